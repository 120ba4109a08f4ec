/**
 * Schema migrations, run in order by Kysely's migrator (which locks, so two processes starting at
 * once migrate only once). One definition for SQLite and PostgreSQL: the only dialect branch is
 * the audit log's auto-increment key. Add a migration by appending to {@link migrationList};
 * never edit one that has shipped.
 * @module
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { Database } from './schema.js';
import { MEDMASK_VERSION } from '../version.js';

/** Which engine a store runs on. */
export type Dialect = 'sqlite' | 'postgres';

// Kysely migrations take Kysely<any> by design (they run against the schema before it exists).
/* eslint-disable @typescript-eslint/no-explicit-any */
type Db = Kysely<any>;

function initial(dialect: Dialect): Migration {
  return {
    async up(db: Db) {
      const text = 'text' as const;
      await db.schema
        .createTable('users')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('username', text, (c) => c.notNull().unique())
        .addColumn('password_hash', text, (c) => c.notNull())
        .addColumn('role', text, (c) => c.notNull())
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', text, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('sessions')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('user_id', text, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('csrf_token', text, (c) => c.notNull())
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('expires_at', text, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('api_tokens')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('user_id', text, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('token_hash', text, (c) => c.notNull().unique())
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('last_used_at', text)
        .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable('projects')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('name', text, (c) => c.notNull().unique())
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('created_by', text)
        .execute();
      await db.schema
        .createTable('datasets')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('project_id', text, (c) => c.notNull().references('projects.id'))
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('description', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('created_by', text)
        .addUniqueConstraint('datasets_project_name', ['project_id', 'name'])
        .execute();
      await db.schema
        .createTable('images')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('dataset_id', text, (c) => c.notNull().references('datasets.id'))
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('blob', text, (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('format', text, (c) => c.notNull())
        .addColumn('shape', text, (c) => c.notNull())
        .addColumn('spacing', text, (c) => c.notNull())
        .addColumn('origin', text, (c) => c.notNull())
        .addColumn('direction', text, (c) => c.notNull())
        .addColumn('voxel_type', text, (c) => c.notNull())
        .addColumn('components', 'integer', (c) => c.notNull())
        .addColumn('meta', text, (c) => c.notNull())
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('created_by', text)
        .addUniqueConstraint('images_dataset_name', ['dataset_id', 'name'])
        .execute();
      await db.schema
        .createTable('labels')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('image_id', text, (c) => c.notNull().references('images.id'))
        .addColumn('kind', text, (c) => c.notNull())
        .addColumn('value', text)
        .addColumn('blob', text)
        .addColumn('target', text)
        .addColumn('provenance', text, (c) => c.notNull())
        .addColumn('job_id', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('created_by', text)
        .execute();
      await db.schema.createIndex('labels_image').on('labels').column('image_id').execute();
      await db.schema
        .createTable('models')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('name', text, (c) => c.notNull().unique())
        .addColumn('blob', text, (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('manifest', text, (c) => c.notNull())
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('created_by', text)
        .execute();
      await db.schema
        .createTable('jobs')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('type', text, (c) => c.notNull())
        .addColumn('input_hash', text, (c) => c.notNull().unique())
        .addColumn('input', text, (c) => c.notNull())
        .addColumn('status', text, (c) => c.notNull())
        .addColumn('progress', 'double precision', (c) => c.notNull().defaultTo(0))
        .addColumn('message', text)
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('result', text)
        .addColumn('error', text)
        .addColumn('worker', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('created_by', text)
        .addColumn('started_at', text)
        .addColumn('finished_at', text)
        .addColumn('updated_at', text, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('jobs_status').on('jobs').column('status').execute();
      await db.schema
        .createTable('predictions')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('job_id', text, (c) => c.notNull().references('jobs.id'))
        .addColumn('image_id', text, (c) => c.notNull().references('images.id'))
        .addColumn('target', text, (c) => c.notNull())
        .addColumn('probabilities', text, (c) => c.notNull())
        .addColumn('uncertainty', 'double precision')
        .addColumn('ood_score', 'double precision')
        .addColumn('decision', text, (c) => c.notNull())
        .addColumn('priority', 'double precision', (c) => c.notNull())
        .addColumn('heatmap_blob', text)
        .addColumn('uncertainty_blob', text)
        .addColumn('attention_blob', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addUniqueConstraint('predictions_job_image_target', ['job_id', 'image_id', 'target'])
        .execute();
      await db.schema
        .createTable('masks')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('image_id', text, (c) => c.notNull().references('images.id'))
        .addColumn('target', text, (c) => c.notNull())
        .addColumn('current_version', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('status', text, (c) => c.notNull())
        .addColumn('priority', 'double precision', (c) => c.notNull().defaultTo(0))
        .addColumn('decision', text)
        .addColumn('prediction_id', text)
        .addColumn('claimed_by', text)
        .addColumn('claimed_at', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .addColumn('updated_at', text, (c) => c.notNull())
        .addUniqueConstraint('masks_image_target', ['image_id', 'target'])
        .execute();
      await db.schema.createIndex('masks_queue').on('masks').columns(['status', 'priority']).execute();
      await db.schema
        .createTable('mask_versions')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('mask_id', text, (c) => c.notNull().references('masks.id'))
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('parent_version', 'integer')
        .addColumn('blob', text, (c) => c.notNull())
        .addColumn('author_id', text)
        .addColumn('origin', text, (c) => c.notNull())
        .addColumn('job_id', text)
        .addColumn('note', text)
        .addColumn('created_at', text, (c) => c.notNull())
        // A linear history: one row per (mask, version); a job adds at most one version per mask.
        .addUniqueConstraint('mask_versions_mask_version', ['mask_id', 'version'])
        .addUniqueConstraint('mask_versions_mask_job', ['mask_id', 'job_id'])
        .execute();
      await db.schema
        .createTable('mask_drafts')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('mask_id', text, (c) => c.notNull().references('masks.id'))
        .addColumn('base_version', 'integer', (c) => c.notNull())
        .addColumn('current_version', 'integer', (c) => c.notNull())
        .addColumn('blob', text, (c) => c.notNull())
        .addColumn('author_id', text)
        .addColumn('note', text)
        .addColumn('created_at', text, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('mask_drafts_mask').on('mask_drafts').column('mask_id').execute();
      await db.schema
        .createTable('reviews')
        .addColumn('id', text, (c) => c.primaryKey())
        .addColumn('mask_id', text, (c) => c.notNull().references('masks.id'))
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('reviewer_id', text, (c) => c.notNull())
        .addColumn('decision', text, (c) => c.notNull())
        .addColumn('reason', text)
        .addColumn('time_spent_ms', 'integer')
        .addColumn('created_at', text, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('audit_log')
        .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('at', text, (c) => c.notNull())
        .addColumn('user_id', text)
        .addColumn('action', text, (c) => c.notNull())
        .addColumn('target', text)
        .addColumn('status', 'integer', (c) => c.notNull())
        .addColumn('ip', text)
        .addColumn('details', text)
        .execute();
      await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
    },
    async down(db: Db) {
      for (const t of ['audit_log', 'reviews', 'mask_drafts', 'mask_versions', 'masks', 'predictions', 'jobs', 'models', 'labels', 'images', 'datasets', 'projects', 'api_tokens', 'sessions', 'users']) {
        await db.schema.dropTable(t).ifExists().execute();
      }
    },
  };
}

/** The review queue's order (priority descending, id) as an index, so a page is an index walk. */
const queueOrderIndex: Migration = {
  async up(db: Db) {
    await db.schema.dropIndex('masks_queue').ifExists().execute();
    await db.schema.createIndex('masks_queue_order').on('masks').columns(['status', 'priority desc', 'id']).execute();
    await db.schema.createIndex('masks_image').on('masks').column('image_id').execute();
  },
  async down(db: Db) {
    await db.schema.dropIndex('masks_image').ifExists().execute();
    await db.schema.dropIndex('masks_queue_order').ifExists().execute();
    await db.schema.createIndex('masks_queue').on('masks').columns(['status', 'priority']).execute();
  },
};

/**
 * Deployment-wide settings that every process sharing the database must agree on (h15s): the blob
 * store's identity and the DICOM UID salt. One row per key, written once (insert-if-absent), so
 * processes starting at the same time settle on the same value.
 */
const deploymentSettings: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('deployment_settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Db) {
    await db.schema.dropTable('deployment_settings').ifExists().execute();
  },
};

/**
 * Active selection (issue 16): a review case's expected gain — how much a review would change its
 * mask and teach the mask head — from the newest prediction, and an index for the queue ordered by it.
 */
const maskExpectedGain: Migration = {
  async up(db: Db) {
    await db.schema.alterTable('masks').addColumn('expected_gain', 'double precision').execute();
    await db.schema.createIndex('masks_queue_gain').on('masks').columns(['status', 'expected_gain desc', 'id']).execute();
  },
  async down(db: Db) {
    await db.schema.dropIndex('masks_queue_gain').ifExists().execute();
    await db.schema.alterTable('masks').dropColumn('expected_gain').execute();
  },
};

/**
 * DICOMweb (h19, issue 19): archives registered per project, series imports with the mapping from
 * medmask's de-identified UIDs back to the archive's (the only place original UIDs and patient
 * attributes are kept), and DICOM SEG pushes with their per-case status.
 */
const dicomweb: Migration = {
  async up(db: Db) {
    const text = 'text' as const;
    await db.schema
      .createTable('dicomweb_sources')
      .addColumn('id', text, (c) => c.primaryKey())
      .addColumn('project_id', text, (c) => c.notNull().references('projects.id'))
      .addColumn('name', text, (c) => c.notNull())
      .addColumn('url', text, (c) => c.notNull())
      .addColumn('auth', text, (c) => c.notNull())
      .addColumn('tls', text, (c) => c.notNull())
      .addColumn('timeout_ms', 'integer', (c) => c.notNull())
      .addColumn('auto_push', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', text, (c) => c.notNull())
      .addColumn('created_by', text)
      .addUniqueConstraint('dicomweb_sources_project_name', ['project_id', 'name'])
      .execute();
    await db.schema
      .createTable('dicomweb_imports')
      .addColumn('id', text, (c) => c.primaryKey())
      .addColumn('source_id', text, (c) => c.notNull().references('dicomweb_sources.id'))
      .addColumn('dataset_id', text, (c) => c.notNull().references('datasets.id'))
      .addColumn('study_uid', text, (c) => c.notNull())
      .addColumn('series_uid', text, (c) => c.notNull())
      .addColumn('status', text, (c) => c.notNull())
      .addColumn('job_id', text)
      .addColumn('image_id', text)
      .addColumn('error', text)
      .addColumn('phi', text)
      .addColumn('created_at', text, (c) => c.notNull())
      .addColumn('updated_at', text, (c) => c.notNull())
      .addColumn('created_by', text)
      .execute();
    await db.schema.createIndex('dicomweb_imports_image').on('dicomweb_imports').column('image_id').execute();
    await db.schema
      .createTable('dicomweb_uid_map')
      .addColumn('import_id', text, (c) => c.notNull().references('dicomweb_imports.id').onDelete('cascade'))
      .addColumn('deid_uid', text, (c) => c.notNull())
      .addColumn('original_uid', text, (c) => c.notNull())
      .addColumn('kind', text, (c) => c.notNull())
      .addPrimaryKeyConstraint('dicomweb_uid_map_pk', ['import_id', 'deid_uid'])
      .execute();
    await db.schema
      .createTable('dicomweb_pushes')
      .addColumn('id', text, (c) => c.primaryKey())
      .addColumn('mask_id', text, (c) => c.notNull().references('masks.id'))
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('source_id', text, (c) => c.notNull().references('dicomweb_sources.id'))
      .addColumn('status', text, (c) => c.notNull())
      .addColumn('reason', text)
      .addColumn('seg_sop_instance_uid', text)
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('job_id', text)
      .addColumn('created_at', text, (c) => c.notNull())
      .addColumn('updated_at', text, (c) => c.notNull())
      .addColumn('created_by', text)
      .execute();
    await db.schema.createIndex('dicomweb_pushes_mask').on('dicomweb_pushes').column('mask_id').execute();
  },
  async down(db: Db) {
    for (const t of ['dicomweb_pushes', 'dicomweb_uid_map', 'dicomweb_imports', 'dicomweb_sources']) await db.schema.dropTable(t).ifExists().execute();
  },
};

/**
 * 0012 (h16a): a model registry with versions. `model_versions` holds every version of every
 * model (numbered per name; rejected fine-tune candidates unnumbered) with its card, parent,
 * training data and held-out metrics; the single-version `models` table's rows become version 1.
 */
const modelVersions: Migration = {
  async up(db: Db) {
    const text = 'text' as const;
    await db.schema
      .createTable('model_versions')
      .addColumn('id', text, (c) => c.primaryKey())
      .addColumn('name', text, (c) => c.notNull())
      .addColumn('version', 'integer')
      .addColumn('status', text, (c) => c.notNull())
      .addColumn('blob', text, (c) => c.notNull())
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('manifest', text, (c) => c.notNull())
      .addColumn('card', text)
      .addColumn('parent_id', text, (c) => c.references('model_versions.id'))
      .addColumn('training', text)
      .addColumn('metrics', text)
      .addColumn('note', text)
      .addColumn('job_id', text)
      .addColumn('created_at', text, (c) => c.notNull())
      .addColumn('created_by', text)
      .execute();
    // Unique per name; NULL versions (rejected candidates) do not collide on either engine.
    await db.schema.createIndex('model_versions_name_version').on('model_versions').columns(['name', 'version']).unique().execute();
    await db.schema.createIndex('model_versions_parent').on('model_versions').column('parent_id').execute();
    await sql`insert into model_versions (id, name, version, status, blob, size, manifest, created_at, created_by)
      select id, name, 1, 'registered', blob, size, manifest, created_at, created_by from models`.execute(db);
    await db.schema.dropTable('models').execute();
  },
  async down(db: Db) {
    await db.schema
      .createTable('models')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('blob', 'text', (c) => c.notNull())
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('manifest', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text')
      .execute();
    await db.schema.dropTable('model_versions').execute();
  },
};

/**
 * h17: one counter row per login key (user name, client address, password change of a user),
 * updated in one statement per attempt, so the limit holds across concurrent requests and processes.
 */
const loginAttempts: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('login_attempts')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('window_start', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Db) {
    await db.schema.dropTable('login_attempts').ifExists().execute();
  },
};

/**
 * Jobs that fan out (h15q): one row per case (or chunk) task with its own state, tries, error and
 * result; the job's format (workers refuse jobs newer than they understand) and its fan-out round.
 */
const jobTasks: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('job_tasks')
      .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('ord', 'integer', (c) => c.notNull())
      .addColumn('input', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('error', 'text')
      .addColumn('result', 'text')
      .addColumn('worker', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('job_tasks_pk', ['job_id', 'key'])
      .execute();
    await db.schema.createIndex('job_tasks_status').on('job_tasks').columns(['job_id', 'status']).execute();
    await db.schema.alterTable('jobs').addColumn('format', 'integer', (c) => c.notNull().defaultTo(1)).execute();
    await db.schema.alterTable('jobs').addColumn('fan_round', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  },
  async down(db: Db) {
    await db.schema.dropTable('job_tasks').execute();
    await db.schema.alterTable('jobs').dropColumn('format').execute();
    await db.schema.alterTable('jobs').dropColumn('fan_round').execute();
  },
};

/** The migrations, in order (names sort in order). */
/** p15: the processes that run jobs, with what they can run (capability routing, queue/capabilities.ts). */
const workers: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('workers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('capabilities', 'text', (c) => c.notNull())
      .addColumn('job_types', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('heartbeat_at', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Db) {
    await db.schema.dropTable('workers').execute();
  },
};

/**
 * s18: the piece index (compressed length and CRC-32 per piece) of label blobs written plane by plane
 * (server/label-blobs.ts), kept with the blob so a one-slice save recompresses one plane even on
 * a fresh server.
 */
const labelPlanes: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('label_planes')
      .addColumn('blob', 'text', (c) => c.primaryKey())
      .addColumn('members', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Db) {
    await db.schema.dropTable('label_planes').execute();
  },
};

export function migrationList(dialect: Dialect): Record<string, Migration> {
  return { '0001_initial': initial(dialect), '0002_queue_order_index': queueOrderIndex, '0010_deployment_settings': deploymentSettings, '0011_job_tasks': jobTasks, '0012_model_versions': modelVersions, '0013_mask_expected_gain': maskExpectedGain, '0014_login_attempts': loginAttempts, '0016_dicomweb': dicomweb, '0017_workers': workers, '0019_label_planes': labelPlanes };
}

/**
 * Bring the database to the newest schema.
 * @param db - the store's Kysely instance
 * @param dialect - sqlite or postgres
 * @returns names of the migrations applied now (empty when already current)
 * @example
 * await migrateToLatest(store.db, store.dialect);
 */
export async function migrateToLatest(db: Kysely<Database>, dialect: Dialect): Promise<string[]> {
  await refuseNewerSchema(db, dialect);
  const provider: MigrationProvider = { getMigrations: async () => migrationList(dialect) };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    throw new MedmaskError('ENVIRONMENT', `database migration failed: ${(error as Error).message ?? String(error)}`, {
      cause: error,
      hint: 'check that the database is reachable and writable, and that no newer medmask version migrated it',
    });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * A database migrated by a newer medmask holds migrations this version does not know: refuse it
 * (migrations never run backwards, and this version would misread the newer schema).
 * @throws MedmaskError ENVIRONMENT (exit 6) naming both schema versions and what to do
 */
export async function refuseNewerSchema(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  let applied: string[];
  try {
    const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
    applied = rows.rows.map((r) => r.name);
  } catch {
    return; // a new database: no migration table yet
  }
  const known = Object.keys(migrationList(dialect)).sort();
  const unknown = applied.filter((n) => !known.includes(n));
  if (!unknown.length) return;
  throw new MedmaskError('ENVIRONMENT', `the database has schema version ${applied.at(-1)} (${applied.length} migrations), newer than this medmask ${MEDMASK_VERSION} knows (schema version ${known.at(-1)}, ${known.length} migrations; unknown: ${unknown.join(', ')})`, {
    hint: 'a newer medmask migrated it: upgrade medmask on this machine to the server\'s version (migrations never run backwards)',
  });
}

/** Quick liveness query (`select 1`). */
export async function ping(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}
