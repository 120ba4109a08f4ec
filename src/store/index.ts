/**
 * The store: database (Kysely on SQLite or PostgreSQL, migrated) and content-addressed blobs.
 * @module
 */
export { openStore, isPostgresUrl, maskUrl, type Store, type OpenStoreOptions } from './db.js';
export { migrateToLatest, migrationList, ping, type Dialect } from './migrations.js';
export { FsBlobStore, checkHash, sha256, type BlobStore, type BlobRef, type FsBlobStoreOptions, type PutStreamOptions } from './blob-store.js';
export { createJob, getJob, claimJob, setJobProgress, completeJob, failJob, unfinishedJobs, jobView, jobInputHash, type JobRow, type JobView } from './jobs.js';
export { saveMaskVersion, staleSaveError, ensureMask, addJobVersion, recordPrediction, getMask, type SaveMaskInput, type SaveMaskResult, type PredictionInput, type MaskRow, type MaskVersionRow } from './masks.js';
export { verifyStore, referencedBlobs, type IntegrityReport } from './integrity.js';
export { newId, nowIso, canonicalJson, parseJson } from './util.js';
export * from './schema.js';
export { putVolume, getVolume, imageGeometry, labelVolume, insertImage, ensureProject, ensureDataset, type ImageRow, type InsertImageInput } from './volumes.js';
export { S3BlobStore, parseS3Url, isS3Url, s3ClientConfigFromEnv, type S3Location, type S3BlobStoreOptions } from './blob-store-s3.js';
export { openBlobStore, normalizeBlobSpec, type OpenBlobStoreOptions } from './blob-store-open.js';
export { checkBlobStoreIdentity, deploymentUidSalt, getDeploymentSetting, recordDeploymentSetting, type BlobStoreIdentity } from './deployment.js';
export { openDeploymentBlobs } from './deployment-open.js';
export { collectGarbage, referencedForGc, type GcOptions, type GcReport } from './blob-gc.js';
export type { BlobEntry } from './blob-store.js';
