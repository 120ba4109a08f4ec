/**
 * What every route module is given, and the request decorations the auth hook adds.
 * @module
 */
import type { SecretBox } from '../store/secret-box.js';
import type {} from '@fastify/cookie';
import type {} from '@fastify/swagger';
import type {} from '@fastify/multipart';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/db.js';
import type { Role } from '../store/schema.js';
import type { JobHandlerRegistry } from '../queue/handlers.js';
import type { JobQueue } from '../queue/queue.js';
import type { Capability } from '../queue/capabilities.js';
import type { Permission } from './permissions.js';
import type { DecodePool } from './decode-pool.js';
import type { VolumeSlices } from './volume-slices.js';

/** The logged-in user of a request. */
export interface AuthUser {
  id: string;
  username: string;
  role: Role;
  /** How the request authenticated. */
  via: 'session' | 'token';
  /** The session's CSRF token (cookie sessions only). */
  csrfToken?: string;
}

/** Server settings that routes read. */
export interface ServerSettings {
  /** Largest upload, bytes (all files of one request together; also the body limit of binary saves). */
  maxUploadBytes: number;
  /**
   * Body limit of the JSON mask save (`POST /api/masks/:id/versions`: its body is parsed on the
   * event loop), bytes; larger masks go to the binary `PUT /api/masks/:id/data`.
   */
  maxJsonSaveBytes: number;
  /** Session lifetime, ms. */
  sessionTtlMs: number;
  /** Mark cookies Secure (serve behind HTTPS). */
  secureCookies: boolean;
  /** Failed logins allowed per IP and user name within loginWindowMs. */
  loginMaxAttempts: number;
  loginWindowMs: number;
  /** Salt for DICOM UID remapping on import (a per-installation secret). */
  uidSalt: string;
  /** Folder for temporary upload files. */
  tmpDir: string;
  /**
   * Folder of the slice-addressable copies of stored volumes (volume-slices.ts; a cache that is
   * rebuilt from the blobs when lost; default `<tmpDir>/volume-slices`; `medmask serve`: `<dataDir>/slices`).
   */
  sliceDir?: string;
  /** scrypt cost for new password hashes. */
  scrypt: { N: number; r: number; p: number };
  /** Cap on the voxels × components an uploaded image may declare (checked before decoding). */
  maxVoxels: number;
  /** Time budget of one upload's decode, ms (past it the decode worker is stopped: 413). */
  decodeTimeoutMs: number;
  /** Decode worker threads (0: decode on the event loop, for tests only). */
  decodeWorkers: number;
  /** Four-eyes review: a reviewer may not accept a mask version they wrote themselves. */
  fourEyesReview: boolean;
}

/** Shared by every route module. */
export interface ServerContext {
  store: Store;
  blobs: BlobStore;
  queue: JobQueue;
  handlers: JobHandlerRegistry;
  settings: ServerSettings;
  /** Seals and opens archive credentials (the deployment's secret key). */
  secrets: SecretBox;
  /** Slice-addressable copies of stored volumes, made in a worker thread (set by createServer). */
  slices?: VolumeSlices;
  /** Upload decoding off the event loop (absent when `decodeWorkers` is 0). */
  decoder?: DecodePool;
  /** This server's capabilities (detected once, on first need) when it runs jobs itself (in-process queue). */
  ownCapabilities?: () => Promise<readonly Capability[]>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route requires; see permissions.ts. Routes without one need `read` (GET) or `admin`. */
    permission?: Permission;
  }
  interface FastifyRequest {
    user: AuthUser | null;
    /** Extra details for this request's audit-log row. */
    auditDetails: Record<string, unknown> | null;
  }
}
