/**
 * Roles and what they may do. Every route names one permission (in its `config.permission`);
 * `public` routes need no login. The matrix below is the single source: docs/server.md prints it
 * and the role-matrix test checks every route against it.
 * @module
 */
import type { Role } from '../store/schema.js';

/** A permission a route requires. */
export type Permission =
  | 'public'
  | 'read'
  | 'self'
  | 'mask:edit'
  | 'mask:review'
  | 'data:write'
  | 'job:run'
  | 'model:write'
  | 'phi'
  | 'admin';

/** What each permission covers, for the docs. */
export const PERMISSION_DOCS: Readonly<Record<Permission, string>> = {
  public: 'no login: /health, /ready, login',
  read: 'see projects, data sets, images, labels, models, jobs, the review queue, masks and their history; export',
  self: 'own account: session, password, API tokens',
  'mask:edit': 'save mask versions, claim a case',
  'mask:review': 'accept or reject a mask',
  'data:write': 'create projects and data sets; upload images, volumes, DICOM, labels and partial masks',
  'job:run': 'start jobs (phantoms, annotate, atlas)',
  'model:write': 'register models',
  phi: "see protected health information: search a project's DICOMweb archive (patient ids and names) and the archive's original UIDs of imported series",
  admin: 'users and roles, audit log, store integrity check',
};

/** Role → permissions. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  viewer: ['public', 'read', 'self'],
  annotator: ['public', 'read', 'self', 'mask:edit'],
  reviewer: ['public', 'read', 'self', 'mask:edit', 'mask:review', 'data:write', 'job:run', 'phi'],
  admin: ['public', 'read', 'self', 'mask:edit', 'mask:review', 'data:write', 'job:run', 'model:write', 'phi', 'admin'],
};

/** True when `role` holds `perm`. */
export function can(role: Role, perm: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(perm);
}

/** The permission matrix as a Markdown table (rows: permissions; columns: roles). */
export function permissionMatrixMarkdown(): string {
  const roles: Role[] = ['admin', 'reviewer', 'annotator', 'viewer'];
  const lines = [`| permission | what it allows | ${roles.join(' | ')} |`, `| --- | --- | ${roles.map(() => ':---:').join(' | ')} |`];
  for (const p of Object.keys(PERMISSION_DOCS) as Permission[]) {
    lines.push(`| \`${p}\` | ${PERMISSION_DOCS[p]} | ${roles.map((r) => (can(r, p) ? '✔' : '—')).join(' | ')} |`);
  }
  return lines.join('\n');
}
