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

/** Whether a model version may be used by jobs. */
export type ModelVersionStatus = 'registered' | 'rejected';

/**
 * One version of a registered model (migration 0012 replaced the single-version `models` table).
 * Registered versions are numbered 1, 2, … per name; a rejected fine-tune candidate keeps its
 * row (metrics, lineage) with no number and is never used by jobs.
 */
export interface ModelVersionsTable {
  id: string;
  name: string;
  /** 1, 2, … per name; null for a rejected candidate. */
  version: number | null;
  status: ModelVersionStatus;
  /** The ONNX file's blob. */
  blob: string;
  size: number;
  /** The medmask-model/1 manifest (JSON). */
  manifest: string;
  /** The model card (card.json, JSON), when given. */
  card: string | null;
  /** The version this one was trained from. */
  parent_id: string | null;
  /** The training data: cases and the provenance of their labels (JSON). */
  training: string | null;
  /** Held-out metrics (JSON), e.g. { heldout: { mean_dice }, parentHeldout: { mean_dice } }. */
  metrics: string | null;
  /** Why a candidate was rejected. */
  note: string | null;
  /** The job that produced it (a fine-tune). */
  job_id: string | null;
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
  /** Expected gain of a review (active selection; null before a prediction gave one). */
  expected_gain: number | null;
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

/** Settings every process of a deployment shares (blob-store identity, UID salt); see `deployment.ts`. */
export interface DeploymentSettingsTable {
  key: string;
  value: string;
  created_at: string;
}

/** A DICOMweb archive registered for a project (credentials never leave the server). */
export interface DicomwebSourcesTable {
  id: string;
  project_id: string;
  name: string;
  url: string;
  /** JSON DicomwebAuth (password / token in clear: the database is the server's secret store). */
  auth: string;
  /** JSON { ca?, insecure? }. */
  tls: string;
  timeout_ms: number;
  /** 1: push accepted masks as DICOM SEG automatically. */
  auto_push: number;
  created_at: string;
  created_by: string | null;
}

/** One series imported from a DICOMweb archive; original UIDs and patient attributes (PHI) live only here. */
export interface DicomwebImportsTable {
  id: string;
  source_id: string;
  dataset_id: string;
  /** Original (archive) UIDs. */
  study_uid: string;
  series_uid: string;
  /** queued | running | retrying | done | failed */
  status: string;
  job_id: string | null;
  image_id: string | null;
  error: string | null;
  /** JSON: the original patient / study attributes a SEG for the archive carries. */
  phi: string | null;
  created_at: string;
  updated_at: string;
  created_by: string | null;
}

/** De-identified UID → the archive's original, per import. */
export interface DicomwebUidMapTable {
  import_id: string;
  deid_uid: string;
  original_uid: string;
  /** study | series | instance | frame-of-reference */
  kind: string;
}

/** A DICOM SEG sent (or to be sent) to an archive. */
export interface DicomwebPushesTable {
  id: string;
  mask_id: string;
  version: number;
  source_id: string;
  /** queued | sending | sent | refused (by the archive; final) | failed (archive unreachable; retried) */
  status: string;
  /** The archive's reason for a refusal, or the error. */
  reason: string | null;
  seg_sop_instance_uid: string | null;
  attempts: number;
  job_id: string | null;
  created_at: string;
  updated_at: string;
  created_by: string | null;
}

/** The whole database, for Kysely. */
/** Login attempt counters (one row per key: "user:NAME", "ip:ADDRESS", "password:USERID"). */
export interface LoginAttemptsTable {
  key: string;
  /** Attempts (reserved before the password check) since window_start. */
  attempts: number;
  window_start: string;
}

/** A process that runs jobs (a `medmask worker`, or a server with the in-process queue). */
export interface WorkersTable {
  /** host:pid. */
  id: string;
  kind: 'worker' | 'server';
  /** JSON array of capabilities (e.g. ["torch"]). */
  capabilities: string;
  /** JSON array of the job types it knows. */
  job_types: string;
  started_at: string;
  /** Refreshed while the process lives; a row older than the stale limit is a dead process. */
  heartbeat_at: string;
}

/** Gzip member lengths of a label blob written one member per axial plane (server/label-blobs.ts). */
export interface LabelPlanesTable {
  blob: string;
  /** JSON array: the header member's length, then one per axial plane. */
  members: string;
}

export interface Database {
  label_planes: LabelPlanesTable;
  login_attempts: LoginAttemptsTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  projects: ProjectsTable;
  datasets: DatasetsTable;
  images: ImagesTable;
  labels: LabelsTable;
  model_versions: ModelVersionsTable;
  jobs: JobsTable;
  job_tasks: JobTasksTable;
  workers: WorkersTable;
  predictions: PredictionsTable;
  masks: MasksTable;
  mask_versions: MaskVersionsTable;
  mask_drafts: MaskDraftsTable;
  reviews: ReviewsTable;
  audit_log: AuditLogTable;
  deployment_settings: DeploymentSettingsTable;
  dicomweb_sources: DicomwebSourcesTable;
  dicomweb_imports: DicomwebImportsTable;
  dicomweb_uid_map: DicomwebUidMapTable;
  dicomweb_pushes: DicomwebPushesTable;
}
