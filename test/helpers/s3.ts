/**
 * An S3-protocol server for tests: s3rver (an npm package) on a free loopback port with one bucket,
 * its data in a temporary folder, stopped (and removed) by stop().
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error s3rver ships no type declarations
import S3rverModule from 's3rver';
import { S3Client } from '@aws-sdk/client-s3';
import { s3ClientConfigFromEnv } from '../../src/store/blob-store-s3.js';
import { freePort } from './services.js';

interface S3rverInstance {
  run(): Promise<unknown>;
  close(): Promise<void>;
}
const S3rver = S3rverModule as new (o: Record<string, unknown>) => S3rverInstance;

/** A running S3-protocol server. */
export interface TestS3 {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  bucket: string;
  /** The environment a medmask process needs to reach it (AWS_ENDPOINT_URL, keys, region). */
  env: Record<string, string>;
  /** A client configured as medmask configures one from `env`. */
  client(): S3Client;
  stop(): Promise<void>;
}

/** Start s3rver with bucket `bucket` (default "medmask-test"). */
export async function startS3(bucket = 'medmask-test'): Promise<TestS3> {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-s3-'));
  const port = await freePort();
  const server = new S3rver({ address: '127.0.0.1', port, silent: true, directory: dir, configureBuckets: [{ name: bucket, configs: [] }] });
  await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  // s3rver checks signatures against its fixed key pair.
  const env = { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  const clients: S3Client[] = [];
  return {
    endpoint,
    bucket,
    env,
    client() {
      const c = new S3Client({ ...s3ClientConfigFromEnv(env), credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.destroy();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
