/**
 * Slices of the case on screen, fetched from the server one response per slice (image + labels +
 * overlays), kept in a byte-bounded LRU, with the neighbours of the slice on screen prefetched so
 * stepping through a volume does not wait on the network.
 */
import type { Api, Axis, OverlayKind, SliceData } from '../api.js';
import type { LayerArray } from '../../../src/core/viewer/index.js';

/** One slice as the viewer uses it. */
export interface CachedSlice {
  axis: Axis;
  index: number;
  version: number;
  width: number;
  height: number;
  image: LayerArray;
  /** Labels of `version` (not including unsaved edits). */
  labels: Uint8Array;
  overlays: Partial<Record<OverlayKind, Uint8Array>>;
  bytes: number;
}

const key = (axis: Axis, index: number, version: number) => `${axis}:${index}:${version}`;

/** Slice cache of one case. */
export class SliceCache {
  private readonly m = new Map<string, CachedSlice>();
  private readonly inflight = new Map<string, Promise<CachedSlice>>();
  private queue: [Axis, number, number][] = [];
  private active = 0;
  private bytes = 0;
  /** Requests made (for tests and the benchmark). */
  fetched = 0;

  constructor(
    private readonly api: Api,
    private readonly maskId: string,
    private readonly layers: string[],
    private readonly maxBytes = 192 * 2 ** 20,
    private readonly concurrency = 3,
  ) {}

  get(axis: Axis, index: number, version: number): CachedSlice | undefined {
    const k = key(axis, index, version);
    const s = this.m.get(k);
    if (s) {
      this.m.delete(k);
      this.m.set(k, s);
    }
    return s;
  }

  private put(s: CachedSlice): void {
    const k = key(s.axis, s.index, s.version);
    const old = this.m.get(k);
    if (old) this.bytes -= old.bytes;
    this.m.set(k, s);
    this.bytes += s.bytes;
    while (this.bytes > this.maxBytes && this.m.size > 1) {
      const [k0, v0] = this.m.entries().next().value!;
      this.m.delete(k0);
      this.bytes -= v0.bytes;
    }
  }

  /** Called when overlays fetched after a slice arrive (see `overlaysLater`). */
  onOverlays: ((s: CachedSlice) => void) | null = null;

  /**
   * The slice, from the cache or the server (one request per slice even when asked twice).
   * With `overlaysLater`, image and labels come first and the heat maps in a second request, so
   * the first slice of a case is not held up by the server decoding overlay volumes.
   */
  load(axis: Axis, index: number, version: number, opts: { overlaysLater?: boolean } = {}): Promise<CachedSlice> {
    const hit = this.get(axis, index, version);
    if (hit) return Promise.resolve(hit);
    const k = key(axis, index, version);
    let p = this.inflight.get(k);
    if (!p) {
      this.fetched++;
      const later = opts.overlaysLater ? this.layers.filter((l) => l !== 'image' && l !== 'labels') : [];
      p = this.api
        .slice(this.maskId, axis, index, version, later.length ? ['image', 'labels'] : this.layers)
        .then(({ header, layers }) => {
          const overlays: CachedSlice['overlays'] = {};
          for (const o of ['heatmap', 'uncertainty', 'attention'] as OverlayKind[]) if (layers[o]) overlays[o] = layers[o] as Uint8Array;
          const s: CachedSlice = { axis, index, version, width: header.tile.w, height: header.tile.h, image: layers.image!, labels: layers.labels as Uint8Array, overlays, bytes: 0 };
          s.bytes = s.image.byteLength + s.labels.byteLength + Object.values(overlays).reduce((a, o) => a + o.byteLength, 0);
          this.put(s);
          if (later.length) {
            void this.api.slice(this.maskId, axis, index, version, later).then(({ layers: more }) => {
              for (const o of later as OverlayKind[]) if (more[o]) (s.overlays[o] = more[o] as Uint8Array), (s.bytes += more[o]!.byteLength);
              this.onOverlays?.(s);
            }, () => undefined);
          }
          return s;
        })
        .finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
    }
    return p;
  }

  /**
   * Take a slice fetched before the cache existed (the first slice, requested together with the
   * case); overlays missing from it are fetched now.
   */
  adopt(d: SliceData): CachedSlice {
    const { header, layers } = d;
    const overlays: CachedSlice['overlays'] = {};
    for (const o of ['heatmap', 'uncertainty', 'attention'] as OverlayKind[]) if (layers[o]) overlays[o] = layers[o] as Uint8Array;
    const s: CachedSlice = { axis: header.axis, index: header.index, version: header.version, width: header.tile.w, height: header.tile.h, image: layers.image!, labels: layers.labels as Uint8Array, overlays, bytes: 0 };
    s.bytes = s.image.byteLength + s.labels.byteLength + Object.values(overlays).reduce((a, o) => a + o.byteLength, 0);
    this.put(s);
    const later = this.layers.filter((l) => l !== 'image' && l !== 'labels' && !layers[l]);
    if (later.length) {
      void this.api.slice(this.maskId, s.axis, s.index, s.version, later).then(({ layers: more }) => {
        for (const o of later as OverlayKind[]) if (more[o]) (s.overlays[o] = more[o] as Uint8Array), (s.bytes += more[o]!.byteLength);
        this.onOverlays?.(s);
      }, () => undefined);
    }
    return s;
  }

  /** Prefetch slices around `index` (nearest first); replaces earlier prefetch wishes. */
  prefetch(axis: Axis, index: number, version: number, depth: number, radius = 4): void {
    this.queue = [];
    for (let d = 1; d <= radius; d++) {
      for (const i of [index + d, index - d]) if (i >= 0 && i < depth && !this.m.has(key(axis, i, version))) this.queue.push([axis, i, version]);
    }
    this.pump();
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length) {
      const [a, i, v] = this.queue.shift()!;
      if (this.m.has(key(a, i, v)) || this.inflight.has(key(a, i, v))) continue;
      this.active++;
      this.load(a, i, v)
        .catch(() => undefined)
        .finally(() => {
          this.active--;
          this.pump();
        });
    }
  }

  /**
   * After a save: cached slices of `from` become slices of `to` with `labelsOf` (base + the saved
   * edits), so nothing is downloaded again.
   */
  rekey(from: number, to: number, labelsOf: (s: CachedSlice) => Uint8Array): void {
    for (const s of [...this.m.values()]) {
      if (s.version !== from) continue;
      this.put({ ...s, version: to, labels: labelsOf(s) });
    }
  }

  /** Cached slices (for the heap figure). */
  get size(): number {
    return this.m.size;
  }

  clear(): void {
    this.m.clear();
    this.queue = [];
    this.bytes = 0;
  }
}
