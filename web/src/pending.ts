/**
 * Unsaved edits kept in the browser (IndexedDB; localStorage when IndexedDB is unavailable), so a
 * closed tab, a lost session or an unreachable server loses no stroke. Written after every step,
 * removed after a successful save.
 */
import type { EditsSnapshot } from '../../src/core/viewer/index.js';

/** What is kept per case. */
export interface PendingEdits {
  maskId: string;
  /** The version the edits were made on. */
  baseVersion: number;
  username: string;
  savedAt: number;
  snapshot: EditsSnapshot;
}

const DB = 'medmask-review';
const STORE = 'pending';
let dbp: Promise<IDBDatabase | null> | undefined;

function open(): Promise<IDBDatabase | null> {
  dbp ??= new Promise((resolve) => {
    try {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'maskId' });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => resolve(null);
    } catch {
      resolve(null);
    }
  });
  return dbp;
}

function tx<T>(db: IDBDatabase, mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const r = f(db.transaction(STORE, mode).objectStore(STORE));
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

const LS = (id: string) => `medmask-pending:${id}`;

function toJson(p: PendingEdits): string {
  return JSON.stringify({ ...p, snapshot: { shape: p.snapshot.shape, planes: p.snapshot.planes.map((q) => ({ z: q.z, idx: [...q.idx], base: [...q.base], value: [...q.value] })) } });
}
function fromJson(s: string): PendingEdits {
  const o = JSON.parse(s) as PendingEdits & { snapshot: { planes: { z: number; idx: number[]; base: number[]; value: number[] }[] } };
  return { ...o, snapshot: { shape: o.snapshot.shape, planes: o.snapshot.planes.map((q) => ({ z: q.z, idx: Uint32Array.from(q.idx), base: Uint8Array.from(q.base), value: Uint8Array.from(q.value) })) } };
}

/** Keep (or replace) a case's unsaved edits. */
export async function putPending(p: PendingEdits): Promise<void> {
  const db = await open();
  if (db) {
    try {
      await tx(db, 'readwrite', (s) => s.put(p));
      return;
    } catch {
      /* fall through */
    }
  }
  try {
    localStorage.setItem(LS(p.maskId), toJson(p));
  } catch {
    /* storage full: nothing more we can do here; the server keeps refused saves as drafts */
  }
}

/** A case's kept edits, if any. */
export async function getPending(maskId: string): Promise<PendingEdits | null> {
  const db = await open();
  if (db) {
    try {
      const r = await tx<PendingEdits | undefined>(db, 'readonly', (s) => s.get(maskId));
      if (r) return r;
    } catch {
      /* fall through */
    }
  }
  const s = localStorage.getItem(LS(maskId));
  return s ? fromJson(s) : null;
}

/** Forget a case's kept edits (after a save). */
export async function deletePending(maskId: string): Promise<void> {
  const db = await open();
  if (db) await tx(db, 'readwrite', (s) => s.delete(maskId)).catch(() => undefined);
  localStorage.removeItem(LS(maskId));
}

/** Every case with kept edits (for the queue page). */
export async function listPending(): Promise<PendingEdits[]> {
  const out: PendingEdits[] = [];
  const db = await open();
  if (db) {
    try {
      out.push(...(await tx<PendingEdits[]>(db, 'readonly', (s) => s.getAll())));
    } catch {
      /* ignore */
    }
  }
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k?.startsWith('medmask-pending:')) out.push(fromJson(localStorage.getItem(k)!));
  }
  return out;
}
