/**
 * Start-up of a deployment's process: open the configured blob store and check that it is the one
 * the database records (see `deployment.ts`), closing the database on refusal.
 * @module
 */
import type { BlobStore } from './blob-store.js';
import { openBlobStore } from './blob-store-open.js';
import type { Store } from './db.js';
import { checkBlobStoreIdentity } from './deployment.js';

export { deploymentUidSalt } from './deployment.js';

/**
 * Open the blob store `spec` (folder or `s3://bucket/prefix`) for a server or worker on `store`.
 * @throws MedmaskError ENVIRONMENT (exit 6) when the store is unreachable or not this deployment's;
 *   the database is closed first
 */
export async function openDeploymentBlobs(store: Store, spec: string): Promise<BlobStore> {
  try {
    const blobs = await openBlobStore(spec);
    await checkBlobStoreIdentity(store.db, blobs, { database: store.description });
    return blobs;
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
}
