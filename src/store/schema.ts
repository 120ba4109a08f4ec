/**
 * Table types of medmask's database, shared by SQLite and PostgreSQL. Identifiers are random text
 * (UUIDs), times ISO-8601 text (sortable, identical on both engines), JSON columns text, booleans
 * 0/1 integers: one schema, no dialect-specific types. See `migrations.ts` for the DDL.
 * @module
 */
import type { Generated } from 'kysely';

/** The four roles; what each may do is in `src/server/permissions.ts` and docs/server.md. */
export type Role = 'admin' | 'reviewer' | 'annotator' | 'viewer';
/** Every role, most powerful first. */
export const ROLES: readonly Role[] = ['admin', 'reviewer', 'annotator', 'viewer'];

/** Where a label came from (AbdomenAtlas: original > revised > pseudo). */
export type Provenance = 'original' | 'pseudo' | 'revised';
/** Who made a mask version. */
export type MaskOrigin = 'model' | 'human' | 'merge';
/** Life of a job. */
export type JobStatus = 'queued' | 'running' | 'done' | 'partial' | 'failed';
/** Life of one task (case or chunk) of a job that fans out. */
export type TaskStatus = 'pending' | 'running' | 'done' | 'failed';
/** State of a review case (a mask). */
export type MaskStatus = 'open' | 'accepted' | 'rejected';

export interface UsersTable {
  id: string;
  username: string;
  /** `scrypt$N$r$p$salt$hash` (base64 parts). */
  password_hash: string;
  role: Role;
  disabled: number;
  created_at: string;
}

export interface SessionsTable {
  /** SHA-256 (hex) of the cookie value; the value itself is never stored. */
  id: string;
  user_id: string;
  csrf_token: string;
  created_at: string;
  expires_at: string;
}

export interface ApiTokensTable {
  id: string;
  user_id: string;
  name: string;
  /** SHA-256 (hex) of the token. */
  token_hash: string;
  created_at: string;
  last_used_at: string | null;
  revoked: number;
}

export interface ProjectsTable {
  id: string;
  name: string;
  created_at: string;
  created_by: string | null;
}

export interface DatasetsTable {
  id: string;
  project_id: string;
  name: string;
  description: string | null;
  created_at: string;
  created_by: string | null;
}

export interface ImagesTable {
  id: string;
  dataset_id: string;
  /** Display name (a plain file name, never used as a path). */
  name: string;
  /** Content hash of the stored volume (.nii.gz). */
  blob: string;
  size: number;
  /** Reader that decoded the upload: nifti, dicom-series, image, … */
  format: string;
  /** JSON [nx, ny, nz]. */
  shape: string;
  spacing: string;
  origin: string;
  /** JSON row-major 3×3. */
  direction: string;
  voxel_type: string;
  components: number;
  /** De-identified metadata (JSON). */
  meta: string;
  created_at: string;
  created_by: string | null;
}

export interface LabelsTable {
  id: string;
  image_id: string;
  /** `class`: an image-level label in `value`; `mask`: a (partial) label map in `blob`. */
  kind: 'class' | 'mask';
  value: string | null;
  blob: string | null;
  /** For masks: the structure(s) labelled, e.g. "liver" or "organs". */
  target: string | null;
  provenance: Provenance;
  job_id: string | null;
  created_at: string;
  created_by: string | null;
}

export interface ModelsTable {
  id: string;
  name: string;
  blob: string;
  size: number;
  /** The medmask-model/1 manifest (JSON). */
  manifest: string;
  created_at: string;
  created_by: string | null;
}

export interface JobsTable {
  id: string;
  type: string;
  /** SHA-256 of type + canonical JSON input: the same input is the same job. */
  input_hash: string;
  input: string;
  status: JobStatus;
  /** 0…1. */
  progress: number;
  message: string | null;
  attempts: number;
  result: string | null;
  error: string | null;
  worker: string | null;
  created_at: string;
  created_by: string | null;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** The job format it was submitted as: a worker that knows an older format refuses it. */
  format: Generated<number>;
  /** How many times its pending tasks were put on the queue (names the queue entries of a round). */
  fan_round: Generated<number>;
}

/** One case (or chunk) of a job that fans out. */
export interface JobTasksTable {
  job_id: string;
  /** Unique within the job (an image id, or a chunk name). */
  key: string;
  /** Order of the task in the job's plan. */
  ord: number;
  /** JSON: what the task works on. */
  input: string;
  status: TaskStatus;
  attempts: number;
  error: string | null;
  /** JSON: what the task produced (read by the job's reduce step). */
  result: string | null;
  worker: string | null;
  updated_at: string;
}

export interface PredictionsTable {
  id: string;
  job_id: string;
  image_id: string;
  target: string;
  /** JSON: class → probability. */
  probabilities: string;
  uncertainty: number | null;
  ood_score: number | null;
  /** accept | review | ood */
  decision: string;
  priority: number;
  heatmap_blob: string | null;
  uncertainty_blob: string | null;
  attention_blob: string | null;
  created_at: string;
}

export interface MasksTable {
  id: string;
  image_id: string;
  target: string;
  /** 0 while no version exists. */
  current_version: number;
  status: MaskStatus;
  priority: number;
  decision: string | null;
  prediction_id: string | null;
  claimed_by: string | null;
  claimed_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface MaskVersionsTable {
  id: string;
  mask_id: string;
  version: number;
  parent_version: number | null;
  blob: string;
  author_id: string | null;
  origin: MaskOrigin;
  job_id: string | null;
  note: string | null;
  created_at: string;
}

export interface MaskDraftsTable {
  id: string;
  mask_id: string;
  /** The version the rejected save edited. */
  base_version: number;
  /** The version that was current when it was refused. */
  current_version: number;
  blob: string;
  author_id: string | null;
  note: string | null;
  created_at: string;
}

export interface ReviewsTable {
  id: string;
  mask_id: string;
  version: number;
  reviewer_id: string;
  decision: 'accept' | 'reject';
  reason: string | null;
  time_spent_ms: number | null;
  created_at: string;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: string;
  user_id: string | null;
  /** e.g. "PUT /api/masks/:id" or "login.failed". */
  action: string;
  /** e.g. "mask:…", the route's ids. */
  target: string | null;
  status: number;
  ip: string | null;
  details: string | null;
}

/** The whole database, for Kysely. */
export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  projects: ProjectsTable;
  datasets: DatasetsTable;
  images: ImagesTable;
  labels: LabelsTable;
  models: ModelsTable;
  jobs: JobsTable;
  job_tasks: JobTasksTable;
  predictions: PredictionsTable;
  masks: MasksTable;
  mask_versions: MaskVersionsTable;
  mask_drafts: MaskDraftsTable;
  reviews: ReviewsTable;
  audit_log: AuditLogTable;
}
