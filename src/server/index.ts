/**
 * The medmask server: `createServer` and what it is made of.
 * @module
 */
export { createServer, DEFAULT_SETTINGS, type CreateServerOptions } from './app.js';
export { createUser } from './routes/auth.js';
export { ROLE_PERMISSIONS, PERMISSION_DOCS, can, permissionMatrixMarkdown, type Permission } from './permissions.js';
export { hashPassword, verifyPassword, generatePassword } from './passwords.js';
export { routePermission, SESSION_COOKIE } from './auth.js';
export type { AuthUser, ServerContext, ServerSettings } from './context.js';
