/**
 * Typed client of the medmask REST API for the review UI: cookie session + CSRF token on writes,
 * errors turned into sentences a reviewer can act on, and reachability tracking (a failed fetch
 * marks the server unreachable; /health is polled until it answers again).
 */
import { parseSlice, type FlaggedRegion, type LayerArray, type PlaneRuns, type SliceHeader } from '../../src/core/viewer/index.js';

export type Role = 'admin' | 'reviewer' | 'annotator' | 'viewer';

export interface User {
  id: string;
  username: string;
  role: Role;
}

export interface QueueItem {
  maskId: string;
  imageId: string;
  imageName: string;
  datasetId: string;
  datasetName: string;
  target: string;
  priority: number;
  decision: string | null;
  status: 'open' | 'accepted' | 'rejected';
  currentVersion: number;
  claimedBy: string | null;
  claimedAt: string | null;
  updatedAt: string;
}

export interface QueueFilter {
  dataset?: string;
  status?: 'open' | 'accepted' | 'rejected' | 'all';
  decision?: string;
  target?: string;
  claimed?: 'me' | 'none' | 'any';
  limit?: number;
  offset?: number;
}

export interface CaseInfo {
  maskId: string;
  imageId: string;
  imageName: string;
  datasetId: string;
  target: string;
  status: 'open' | 'accepted' | 'rejected';
  decision: string | null;
  priority: number;
  currentVersion: number;
  claimedBy: string | null;
  /** Last heartbeat of the claim (claims expire after a few minutes without one). */
  claimedAt?: string | null;
  shape: [number, number, number];
  spacing: [number, number, number];
  direction: number[];
  voxelType: string;
  components: number;
  modality: 'ct' | 'image';
  range: [number, number];
  window: [number, number];
  labels: number[];
  overlays: Record<OverlayKind, boolean>;
  versions: { version: number; origin: string; author: string | null; note: string | null; createdAt: string }[];
}

export type OverlayKind = 'heatmap' | 'uncertainty' | 'attention';
export type Axis = 'x' | 'y' | 'z';

/** A flagged region as the server lists it (the core type). */
export type Region = FlaggedRegion;

export interface SliceData {
  header: SliceHeader;
  layers: Record<string, LayerArray>;
}

/** An edit the server kept instead of making it current (a stale save, or a model job's candidate after a person's work). */
export interface Draft {
  id: string;
  /** The version it was made on. */
  baseVersion: number;
  /** The version that was current when it was kept. */
  currentVersionAtSave: number;
  /** Who made it; null for a model job. */
  author: string | null;
  note: string | null;
  hash: string;
  createdAt: string;
}

export interface ConflictDetails {
  currentVersion: number;
  draftId: string;
  current: { version: number; origin: string; author: string | null; createdAt: string } | null;
}

/** An API error with a sentence for people. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
  /** True when the server could not be reached at all. */
  get network(): boolean {
    return this.status === 0;
  }
}

const WORDS: Record<string, string> = {
  UNAUTHENTICATED: 'You are not logged in (or your session ended).',
  FORBIDDEN: 'Your role does not allow this.',
  NOT_FOUND: 'That no longer exists.',
  CONFLICT: 'Someone saved a newer version in the meantime.',
  TOO_LARGE: 'That is larger than the server accepts.',
  RATE_LIMITED: 'Too many attempts.',
  USAGE: 'The server refused the request.',
  INTERNAL: 'The server had an internal error.',
};

/** One sentence for an error: what happened and what the server said. */
export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.network) return 'Cannot reach the server. Check the connection; your edits are kept in this browser.';
    const lead = WORDS[e.code] ?? `The server answered ${e.status}.`;
    return `${lead} ${e.message}${e.hint ? ` (${e.hint})` : ''}`;
  }
  return e instanceof Error ? e.message : String(e);
}

type Listener = (reachable: boolean) => void;

/** The API client (one per page). */
export class Api {
  csrf = '';
  user: User | null = null;
  reachable = true;
  private readonly listeners = new Set<Listener>();
  private poll: ReturnType<typeof setTimeout> | undefined;
  /** Called when a request finds the session gone (401). */
  onUnauthenticated: (() => void) | null = null;

  constructor(private readonly base = '') {}

  onReachability(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private setReachable(r: boolean): void {
    if (r === this.reachable) return;
    this.reachable = r;
    for (const l of this.listeners) l(r);
    if (!r) this.pollHealth();
  }

  private pollHealth(delay = 2000): void {
    clearTimeout(this.poll);
    this.poll = setTimeout(async () => {
      try {
        const r = await fetch(`${this.base}/health`, { cache: 'no-store' });
        if (r.ok) return this.setReachable(true);
      } catch {
        /* still down */
      }
      this.pollHealth(Math.min(delay * 1.5, 15000));
    }, delay);
  }

  /** A request; JSON in and out unless `raw`. */
  async request<T>(method: string, path: string, body?: unknown, opts: { raw?: boolean; signal?: AbortSignal } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET' && this.csrf) headers['x-csrf-token'] = this.csrf;
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', signal: opts.signal });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      this.setReachable(false);
      throw new ApiError(0, 'NETWORK', 'the server cannot be reached');
    }
    this.setReachable(res.status !== 502 && res.status !== 503 && res.status !== 504);
    if (!res.ok) {
      let j: { error?: string; message?: string; hint?: string; details?: Record<string, unknown> } = {};
      try {
        j = await res.json();
      } catch {
        /* not JSON */
      }
      const err = new ApiError(res.status, j.error ?? 'HTTP', j.message ?? res.statusText, j.hint, j.details);
      if (res.status === 401 && this.onUnauthenticated && !path.startsWith('/api/auth/')) this.onUnauthenticated();
      throw err;
    }
    if (opts.raw) return (await res.arrayBuffer()) as T;
    return (await res.json()) as T;
  }

  // ── session ──
  async login(username: string, password: string): Promise<User> {
    const r = await this.request<{ user: User; csrfToken: string }>('POST', '/api/auth/login', { username, password });
    this.csrf = r.csrfToken;
    this.user = r.user;
    return r.user;
  }
  async me(): Promise<User | null> {
    try {
      const r = await this.request<{ user: User; csrfToken?: string }>('GET', '/api/auth/me');
      this.csrf = r.csrfToken ?? '';
      this.user = r.user;
      return r.user;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return null;
      throw e;
    }
  }
  async logout(): Promise<void> {
    await this.request('POST', '/api/auth/logout').catch(() => undefined);
    this.user = null;
    this.csrf = '';
  }

  can(perm: 'edit' | 'review'): boolean {
    const r = this.user?.role;
    return perm === 'edit' ? r === 'admin' || r === 'reviewer' || r === 'annotator' : r === 'admin' || r === 'reviewer';
  }

  // ── queue ──
  queue(f: QueueFilter): Promise<{ total: number; items: QueueItem[] }> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v !== undefined && v !== '') q.set(k, String(v));
    return this.request('GET', `/api/review/queue?${q}`);
  }
  async datasets(): Promise<{ id: string; name: string; project: string }[]> {
    const { projects } = await this.request<{ projects: { id: string; name: string }[] }>('GET', '/api/projects');
    const out: { id: string; name: string; project: string }[] = [];
    for (const p of projects) {
      const { datasets } = await this.request<{ datasets: { id: string; name: string }[] }>('GET', `/api/projects/${p.id}/datasets`);
      for (const d of datasets) out.push({ id: d.id, name: d.name, project: p.name });
    }
    return out;
  }

  // ── viewer ──
  caseInfo(maskId: string): Promise<CaseInfo> {
    return this.request('GET', `/api/viewer/masks/${encodeURIComponent(maskId)}`);
  }
  /** One slice; `index` / `version` null: the middle slice / the current version. */
  async slice(maskId: string, axis: Axis, index: number | null, version: number | null, layers: string[], signal?: AbortSignal): Promise<SliceData> {
    const q = new URLSearchParams({ axis, layers: layers.join(',') });
    if (index !== null) q.set('index', String(index));
    if (version !== null) q.set('version', String(version));
    const buf = await this.request<ArrayBuffer>('GET', `/api/viewer/masks/${encodeURIComponent(maskId)}/slice?${q}`, undefined, { raw: true, signal });
    return parseSlice(buf);
  }
  async labelPlanes(maskId: string, axis: Axis, from: number, to: number, version: number): Promise<Uint8Array> {
    const q = new URLSearchParams({ axis, from: String(from), to: String(to), version: String(version) });
    return new Uint8Array(await this.request<ArrayBuffer>('GET', `/api/viewer/masks/${encodeURIComponent(maskId)}/label-planes?${q}`, undefined, { raw: true }));
  }
  regions(maskId: string, threshold = 0.5): Promise<{ kind: OverlayKind | null; regions: Region[] }> {
    return this.request('GET', `/api/viewer/masks/${encodeURIComponent(maskId)}/regions?threshold=${threshold}`);
  }
  async drafts(maskId: string): Promise<Draft[]> {
    return (await this.request<{ drafts: Draft[] }>('GET', `/api/masks/${encodeURIComponent(maskId)}/drafts`)).drafts;
  }
  /** A draft's labels: raw uint8, x fastest (the whole volume). */
  async draftLabels(maskId: string, draftId: string): Promise<Uint8Array> {
    return new Uint8Array(await this.request<ArrayBuffer>('GET', `/api/masks/${encodeURIComponent(maskId)}/drafts/${encodeURIComponent(draftId)}/data?format=raw`, undefined, { raw: true }));
  }
  saveEdits(maskId: string, body: { baseVersion: number; onto?: number; planes: PlaneRuns[]; note?: string }): Promise<{ maskId: string; version: number; changed: number }> {
    return this.request('POST', `/api/viewer/masks/${encodeURIComponent(maskId)}/edits`, body);
  }
  review(maskId: string, body: { decision: 'accept' | 'reject'; version: number; reason?: string; timeSpentMs?: number }): Promise<{ status: string }> {
    return this.request('POST', `/api/masks/${encodeURIComponent(maskId)}/review`, body);
  }
  claim(maskId: string): Promise<unknown> {
    return this.request('POST', `/api/masks/${encodeURIComponent(maskId)}/claim`);
  }
  /** Review progress of a data set: cases, cases done, and cases this user decided since `since`. */
  progress(datasetId: string, since: Date): Promise<{ total: number; done: number; doneByMeSince: number }> {
    return this.request('GET', `/api/viewer/progress?dataset=${encodeURIComponent(datasetId)}&since=${encodeURIComponent(since.toISOString())}`);
  }
  release(maskId: string): Promise<unknown> {
    return this.request('DELETE', `/api/masks/${encodeURIComponent(maskId)}/claim`);
  }
}
