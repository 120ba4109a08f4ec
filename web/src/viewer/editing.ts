/**
 * The editing tools and the mouse: brush / eraser along the mouse path, label flood fill (in the
 * slice or through ±N slices, with a guard against flooding the background), intensity-bounded
 * fill, threshold brush (paints only pixels in an intensity range), 3D sphere brush in mm,
 * interpolation between two edited slices, W/L by drag, the linked crosshair, pan and zoom, label visibility and locks, undo / redo. Every tool writes through the mask editor, one
 * undoable step per stroke or click.
 */
import {
  allowed, boundedFill, changeRectInView, interpolateSlices, parseWindow, seedRange, sphereVoxels, viewDims, viewToVoxel, voxelToView, zoomAbout, type Rect, type ViewAxis, type WriteOptions,
} from '../../../src/core/viewer/index.js';
import { describeError } from '../api.js';
import { perf } from '../perf.js';
import { toast } from '../ui.js';
import type { Tool, Viewer } from './state.js';

/** The editing controller. */
export class EditingController {
  /** The stroke in progress; `box` is the canvas's client rectangle when it began. */
  private painting: { last: { x: number; y: number }; pointer: number; range: [number, number] | null; box: DOMRect } | null = null;
  private crossing: number | null = null;
  private panning: { x: number; y: number; pan: [number, number] } | null = null;
  private leveling: { x: number; y: number; window: [number, number] } | null = null;
  private sphere: { from: number; to: number; planes: Uint8Array; axis: ViewAxis; pointer: number; box: DOMRect } | null = null;
  /** The pointer of a sphere stroke whose planes are still loading, and whether it was released meanwhile. */
  private spherePending: { pointer: number; released: boolean } | null = null;
  private spaceDown = false;
  private readonly disposers: (() => void)[] = [];

  constructor(private readonly v: Viewer) {}

  private writeOpts(value: number): WriteOptions {
    const st = this.v.st;
    return { value, keepOthers: st.keepOthers, ...(st.locked.size ? { locked: st.locked } : {}) };
  }

  // ── settings ──
  setTool(t: Tool): void {
    const { st, ui } = this.v;
    if (t !== 'wl' && t !== 'cross' && !st.canEdit) return;
    if ((t === 'fill-range' || t === 'sphere') && !st.is3d) t = 'fill';
    st.tool = t;
    if (t === 'holes' && st.displayed && st.displayLabels) {
      st.editor.begin('fill holes');
      const r = st.editor.fillHoles({ axis: st.axis, index: st.index[st.axis], labels: st.displayLabels }, st.label);
      this.afterStep(r.dirty);
      toast(r.pixels ? `Filled ${r.pixels} hole pixel(s).` : 'No holes in the selected label on this slice.');
      st.tool = 'brush';
    }
    ui.el.size.max = st.tool === 'sphere' ? '50' : '64';
    ui.el.size.value = String(st.tool === 'sphere' ? st.sphereMm : st.brushSize);
    ui.renderHeader();
  }
  setLabel(value: number): void {
    this.v.st.label = value;
    this.v.ui.renderLegend();
  }
  setBrush(px: number): void {
    const { st, ui } = this.v;
    if (st.tool === 'sphere') st.sphereMm = Math.max(0.5, Math.min(50, Math.round(px * 2) / 2));
    else st.brushSize = Math.max(1, Math.min(64, Math.round(px)));
    ui.el.size.value = String(st.tool === 'sphere' ? st.sphereMm : st.brushSize);
    ui.renderHeader();
  }
  /** The bounded fill's range, typed ("lo..hi" or "W/L"); empty = from the clicked pixel. */
  setFillBounds(text: string): void {
    const st = this.v.st;
    if (!text.trim()) return void (st.fillBounds = null);
    const w = parseWindow(text);
    if (!w) return void toast(`"${text}" is not an intensity range: type lo..hi, e.g. 40..120.`, 'error');
    st.fillBounds = w;
  }
  toggleHidden(value: number): void {
    const st = this.v.st;
    if (!st.hidden.delete(value)) st.hidden.add(value);
    this.v.ui.renderLegend();
    this.v.slices.redraw();
  }
  toggleLocked(value: number): void {
    const st = this.v.st;
    if (!st.locked.delete(value)) st.locked.add(value);
    this.v.ui.renderLegend();
  }

  // ── steps ──
  afterStep(dirty: Rect | null): void {
    const { st, ui } = this.v;
    const step = st.editor.end();
    if (dirty) st.view.recompose(dirty);
    if (step) this.v.multi.redraw();
    ui.renderEdits();
    if (step) this.v.saver.schedulePersist();
  }
  /** Redraw after a step that was undone, redone or written off screen. */
  refreshAfter(step: { voxels: Uint32Array } | null | undefined): void {
    const { st, ui } = this.v;
    if (!step || !st.displayed || !st.displayLabels) return;
    const r = changeRectInView(step as never, st.shape, st.displayed.axis, st.displayed.index);
    if (r) {
      st.displayLabels.set(this.v.slices.labelsFor(st.displayed));
      st.view.recompose(r);
    }
    this.v.multi.redraw();
    ui.renderEdits();
    this.v.saver.schedulePersist();
  }
  undo(): void {
    if (!this.v.st.canEdit) return;
    const s = this.v.st.editor.undo();
    if (!s) return toast('Nothing to undo.');
    this.refreshAfter(s);
  }
  redo(): void {
    if (!this.v.st.canEdit) return;
    const s = this.v.st.editor.redo();
    if (!s) return toast('Nothing to redo.');
    this.refreshAfter(s);
  }

  // ── fills ──
  /** Label planes from..to along the view axis, as shown (version + unsaved edits). */
  private async planesAsShown(a: ViewAxis, from: number, to: number): Promise<(k: number) => Uint8Array> {
    const { st } = this.v;
    const { width, height } = viewDims(st.shape, a);
    const planes = await st.api.labelPlanes(st.maskId, a, from, to, st.baseVersion);
    const made = new Map<number, Uint8Array>();
    return (k: number) => {
      if (k === st.displayed?.index && a === st.displayed.axis && st.displayLabels) return st.displayLabels;
      let pl = made.get(k);
      if (!pl) {
        pl = planes.slice((k - from) * width * height, (k - from + 1) * width * height);
        st.editor.edits.applyToSlice(a, k, pl);
        made.set(k, pl);
      }
      return pl;
    };
  }

  async fillAt(p: { x: number; y: number }, range: boolean, force = false): Promise<void> {
    const { st, ui } = this.v;
    if (!st.displayed || !st.displayLabels) return;
    const a = st.displayed.axis, i = st.displayed.index;
    const o = this.writeOpts(st.label);
    const { width, height, depth } = viewDims(st.shape, a);
    if (!range || st.fillRange === 0) {
      st.editor.begin('fill');
      const r = st.editor.fill({ axis: a, index: i, labels: st.displayLabels }, p, o);
      if (!force && r.pixels > st.fillGuard * width * height) {
        this.refreshAfter(st.editor.cancel());
        toast(`That fill would change ${r.pixels.toLocaleString()} pixels (${Math.round((100 * r.pixels) / (width * height))} % of the slice): not done. Shift+click to fill anyway, or use Fill ≈ to stop at intensity edges.`, 'error');
        return;
      }
      this.afterStep(r.dirty);
      if (!r.pixels) toast('Nothing to fill there (already this label, or protected).');
      return;
    }
    const from = Math.max(0, i - st.fillRange), to = Math.min(depth - 1, i + st.fillRange);
    ui.el.sliceLoading.hidden = false;
    try {
      const planeAt = await this.planesAsShown(a, from, to);
      st.editor.begin(`fill slices ${from + 1}–${to + 1}`);
      const r = st.editor.fill({ axis: a, index: i, labels: st.displayLabels }, p, o, [from, to], planeAt);
      this.afterStep(r.dirty);
      toast(r.pixels ? `Filled ${r.pixels.toLocaleString()} voxels in slices ${from + 1}–${to + 1}.` : 'Nothing to fill there.');
    } catch (e) {
      st.editor.end();
      toast(`Fill failed: ${describeError(e)}`, 'error');
    } finally {
      ui.el.sliceLoading.hidden = true;
    }
  }

  /** Fill the pixels of similar intensity connected to the click (range from the seed or typed). */
  boundedFillAt(p: { x: number; y: number }, force = false): void {
    const { st, ui } = this.v;
    const s = st.displayed, labels = st.displayLabels;
    if (!s || !labels || s.image.length !== s.width * s.height) return;
    const range = st.fillBounds ?? seedRange(s.image, s.width, s.height, p, st.info.range);
    const o = this.writeOpts(st.label);
    const max = force ? Infinity : st.fillGuard * s.width * s.height;
    const r = boundedFill(s.image, s.width, s.height, p, range, max, (q) => allowed(labels[q]!, o) || labels[q] === st.label);
    ui.el.bounds.placeholder = `${+range[0].toFixed(1)}..${+range[1].toFixed(1)}`;
    if (r.guarded) {
      toast(`Fill ≈ ${+range[0].toFixed(1)}..${+range[1].toFixed(1)} would change more than ${Math.round(st.fillGuard * 100)} % of the slice: not done. Narrow the range (≈ box) or Shift+click to fill anyway.`, 'error');
      return;
    }
    st.editor.begin('fill ≈');
    let dirty: Rect | null = null;
    let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
    for (const q of r.pixels) {
      const cur = labels[q]!;
      if (!allowed(cur, o)) continue;
      const x = q % s.width, y = (q - x) / s.width;
      st.editor.writeVoxel(viewToVoxel(st.shape, s.axis, s.index, x, y), cur, st.label);
      labels[q] = st.label;
      x0 = Math.min(x0, x), y0 = Math.min(y0, y), x1 = Math.max(x1, x), y1 = Math.max(y1, y);
    }
    if (x1 >= 0) dirty = { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
    this.afterStep(dirty);
    toast(dirty ? `Filled ${r.count.toLocaleString()} pixels with values ${+range[0].toFixed(1)}..${+range[1].toFixed(1)}.` : 'Nothing to fill there.');
  }

  /** Start a sphere stroke: the label planes it can reach, fetched once. */
  private async sphereBegin(p: { x: number; y: number }, pointer: number): Promise<void> {
    const { st } = this.v;
    const s = st.displayed;
    if (!s) return;
    const a = s.axis;
    const sp = st.info.spacing;
    const along = a === 'z' ? sp[2] : a === 'y' ? sp[1] : sp[0];
    const reach = Math.floor(st.sphereMm / along);
    const { depth } = viewDims(st.shape, a);
    const from = Math.max(0, s.index - reach), to = Math.min(depth - 1, s.index + reach);
    const planes = await st.api.labelPlanes(st.maskId, a, from, to, st.baseVersion);
    const { width, height } = viewDims(st.shape, a);
    for (let k = from; k <= to; k++) st.editor.edits.applyToSlice(a, k, planes.subarray((k - from) * width * height, (k - from + 1) * width * height));
    const pending = this.spherePending;
    this.spherePending = null;
    this.sphere = { from, to, planes, axis: a, pointer, box: st.view.canvas.getBoundingClientRect() };
    st.editor.begin('sphere');
    this.sphereAt(p);
    if (pending?.released) {
      // released before the planes arrived: a click, one sphere
      this.sphere = null;
      this.afterStep(null);
    }
  }
  private sphereAt(p: { x: number; y: number }, t0 = performance.now()): void {
    const { st } = this.v;
    const s = st.displayed, sph = this.sphere;
    if (!s || !sph || !st.displayLabels) return;
    const { width, height } = viewDims(st.shape, sph.axis);
    const q0 = Math.floor(p.x), r0 = Math.floor(p.y);
    if (q0 < 0 || r0 < 0 || q0 >= width || r0 >= height) return;
    const c = viewToVoxel(st.shape, sph.axis, s.index, q0, r0);
    const [nx, ny] = st.shape;
    const ci = c % nx, cj = Math.floor(c / nx) % ny, ck = Math.floor(c / (nx * ny));
    const o = this.writeOpts(st.label);
    let dirty: Rect | null = null;
    for (const vx of sphereVoxels([ci, cj, ck], st.sphereMm, st.info.spacing, st.shape)) {
      const i = vx % nx, j = Math.floor(vx / nx) % ny, k = Math.floor(vx / (nx * ny));
      const at = voxelToView(sph.axis, i, j, k);
      if (at.index < sph.from || at.index > sph.to) continue;
      const off = (at.index - sph.from) * width * height + at.q + width * at.r;
      const cur = sph.planes[off]!;
      if (!allowed(cur, o)) continue;
      st.editor.writeVoxel(vx, cur, st.label);
      sph.planes[off] = st.label;
      if (at.index === s.index) {
        st.displayLabels[at.q + width * at.r] = st.label;
        dirty = dirty ? { x: Math.min(dirty.x, at.q), y: Math.min(dirty.y, at.r), w: Math.max(dirty.x + dirty.w, at.q + 1) - Math.min(dirty.x, at.q), h: Math.max(dirty.y + dirty.h, at.r + 1) - Math.min(dirty.y, at.r) } : { x: at.q, y: at.r, w: 1, h: 1 };
      }
    }
    if (dirty) st.view.recompose(dirty);
    perf.record('brush', performance.now() - t0);
  }

  /**
   * Fill between slices: the selected label interpolated on the slices between the two nearest
   * edited slices around the one on screen (along the view axis), as one undoable step.
   */
  async interpolate(): Promise<void> {
    const { st, ui } = this.v;
    if (!st.canEdit || !st.displayed) return;
    if (st.editor.inStep) this.afterStep(null);
    const a = st.displayed.axis, cur = st.displayed.index;
    const [nx, ny] = st.shape;
    const edited = new Set<number>();
    for (const p of st.editor.edits.snapshot().planes) {
      for (let t = 0; t < p.idx.length; t++) {
        if (p.value[t] !== st.label) continue;
        const i = p.idx[t]! % nx, j = Math.floor(p.idx[t]! / nx);
        edited.add(a === 'z' ? p.z : a === 'y' ? j : i);
      }
    }
    const list = [...edited].sort((x, y) => x - y);
    let lo = [...list].reverse().find((k) => k <= cur);
    let hi = list.find((k) => k > cur);
    if (lo === cur && hi === undefined) (hi = lo), (lo = [...list].reverse().find((k) => k < cur));
    if (lo === undefined || hi === undefined || hi - lo < 2) {
      return void toast('Fill between slices needs the selected label drawn on two slices with at least one slice between them (edits of this session, along this view).', 'error');
    }
    ui.el.sliceLoading.hidden = false;
    try {
      const planeAt = await this.planesAsShown(a, lo, hi);
      const { width, height } = viewDims(st.shape, a);
      const sp = st.info.spacing;
      const inPlane: [number, number] = a === 'z' ? [sp[0], sp[1]] : a === 'y' ? [sp[0], sp[2]] : [sp[1], sp[2]];
      const masks = interpolateSlices(planeAt(lo), planeAt(hi), width, height, st.label, hi - lo - 1, inPlane);
      const o = this.writeOpts(st.label);
      st.editor.begin(`fill between slices ${lo + 1}–${hi + 1}`);
      let n = 0;
      for (const [t, m] of masks.entries()) {
        const k = lo + 1 + t;
        const plane = planeAt(k);
        for (let q = 0; q < m.length; q++) {
          if (!m[q] || !allowed(plane[q]!, o)) continue;
          const x = q % width, y = (q - x) / width;
          st.editor.writeVoxel(viewToVoxel(st.shape, a, k, x, y), plane[q]!, st.label);
          plane[q] = st.label;
          n++;
        }
      }
      const step = st.editor.end();
      this.refreshAfter(step);
      if (step) st.view.recompose(null);
      toast(n ? `Filled ${n.toLocaleString()} voxels on slices ${lo + 2}–${hi} between slices ${lo + 1} and ${hi + 1}.` : 'The slices between already hold the interpolated label.', n ? 'ok' : 'info');
    } catch (e) {
      st.editor.end();
      toast(`Fill between slices failed: ${describeError(e)}`, 'error');
    } finally {
      ui.el.sliceLoading.hidden = true;
    }
  }

  /**
   * The threshold brush's range for a stroke starting at `p`: the typed one, or picked from the
   * seed's neighbourhood as the bounded fill does (shown in the ≈ box). Null for images without
   * one value per pixel (colour pictures).
   */
  private strokeRange(p: { x: number; y: number }): [number, number] | null {
    const { st, ui } = this.v;
    const s = st.displayed;
    if (!s || s.image.length !== s.width * s.height) {
      toast('The threshold brush needs one value per pixel (a grey-level image).', 'error');
      return null;
    }
    const range = st.fillBounds ?? seedRange(s.image, s.width, s.height, p, st.info.range);
    ui.el.bounds.placeholder = `${+range[0].toFixed(1)}..${+range[1].toFixed(1)}`;
    return range;
  }

  // ── mouse ──
  private radius(): number {
    return this.v.st.brushSize / 2;
  }
  brushRadius(): number {
    return this.radius();
  }
  private updateCursor(e: PointerEvent): void {
    const { st, ui } = this.v;
    const el = ui.el;
    const round = st.tool === 'brush' || st.tool === 'eraser' || st.tool === 'threshold' || st.tool === 'sphere';
    if (!st.canEdit || !round) {
      el.cursor.hidden = true;
      return;
    }
    const b = st.view.canvas.getBoundingClientRect();
    const sp = st.info.spacing;
    const px = st.tool === 'sphere' ? (2 * st.sphereMm) / (st.axis === 'x' ? sp[1] : sp[0]) : st.brushSize;
    const d = px * st.view.cssScale();
    el.cursor.hidden = false;
    el.cursor.style.width = el.cursor.style.height = `${d}px`;
    el.cursor.style.transform = `translate(${e.clientX - b.left - d / 2}px, ${e.clientY - b.top - d / 2}px)`;
    el.cursor.classList.toggle('erase', st.tool === 'eraser');
  }
  /** Paint to `p`; `t0` is when the mouse event happened (the brush figure is event → pixels). */
  private paintTo(p: { x: number; y: number }, t0 = performance.now()): void {
    const { st } = this.v;
    if (!this.painting || !st.displayLabels || !st.displayed) return;
    const o: WriteOptions = st.tool === 'eraser' ? { value: 0, ...(st.keepOthers ? { onlyOver: st.label } : {}), ...(st.locked.size ? { locked: st.locked } : {}) } : this.writeOpts(st.label);
    if (this.painting.range) o.within = { image: st.displayed.image, range: this.painting.range };
    const dirty = st.editor.brush({ axis: st.displayed.axis, index: st.displayed.index, labels: st.displayLabels }, this.painting.last, p, this.radius(), o);
    this.painting.last = p;
    if (dirty) st.view.recompose(dirty);
    perf.record('brush', performance.now() - t0);
  }

  /** Attach the mouse and keyboard-modifier handlers to the view. */
  install(): void {
    const { st } = this.v;
    const canvas = st.view.canvas;
    const on = <K extends keyof HTMLElementEventMap>(t: EventTarget, type: K | string, f: (e: never) => void, o?: AddEventListenerOptions) => {
      t.addEventListener(type, f as EventListener, o);
      this.disposers.push(() => t.removeEventListener(type, f as EventListener, o));
    };
    on(canvas, 'contextmenu', (e: Event) => e.preventDefault());
    on(canvas, 'pointerdown', (e: PointerEvent) => {
      st.timer.activity();
      const p = st.view.toSlice(e.clientX, e.clientY);
      if (!p) return;
      if (e.button === 1 || e.button === 2 || (e.button === 0 && this.spaceDown)) {
        this.panning = { x: e.clientX, y: e.clientY, pan: [...st.settings.pan] };
        canvas.setPointerCapture(e.pointerId);
        return;
      }
      if (e.button !== 0) return;
      if (st.tool === 'cross') {
        this.crossing = e.pointerId;
        canvas.setPointerCapture(e.pointerId);
        this.v.multi.moveCrosshair(st.axis, p);
        return;
      }
      if (st.tool === 'wl' || !st.canEdit) {
        if (!st.canEdit && st.tool !== 'wl') {
          this.panning = { x: e.clientX, y: e.clientY, pan: [...st.settings.pan] };
        } else this.leveling = { x: e.clientX, y: e.clientY, window: [...st.settings.window] };
        canvas.setPointerCapture(e.pointerId);
        return;
      }
      if (st.tool === 'brush' || st.tool === 'eraser' || st.tool === 'threshold') {
        const range = st.tool === 'threshold' ? this.strokeRange(p) : null;
        if (st.tool === 'threshold' && !range) return;
        st.editor.begin(st.tool);
        this.painting = { last: p, pointer: e.pointerId, range, box: canvas.getBoundingClientRect() };
        canvas.setPointerCapture(e.pointerId);
        this.paintTo(p, e.timeStamp);
      } else if (st.tool === 'fill' || st.tool === 'fill-range') {
        void this.fillAt(p, st.tool === 'fill-range', e.shiftKey);
      } else if (st.tool === 'bounded') {
        this.boundedFillAt(p, e.shiftKey);
      } else if (st.tool === 'sphere') {
        canvas.setPointerCapture(e.pointerId);
        this.spherePending = { pointer: e.pointerId, released: false };
        void this.sphereBegin(p, e.pointerId).catch((err) => {
          this.spherePending = null;
          toast(`Sphere brush: ${describeError(err)}`, 'error');
        });
      }
    });
    // Strokes follow `pointerrawupdate` where the browser has it: it is dispatched as the input
    // arrives, while `pointermove` waits for the next rendering frame (rAF-aligned input) — on a
    // busy software-rendered page that wait was most of a brush move's latency. The pixels are
    // written at once and shown by the next frame; `pointermove` then only moves the cursor ring
    // and the read-out (display work, fine at frame rate).
    const strokeMove = (e: PointerEvent) => {
      const held = this.sphere ?? this.painting;
      if (!held || e.pointerId !== held.pointer) return;
      const p = st.view.toSlice(e.clientX, e.clientY, held.box);
      if (!p) return;
      if (this.sphere) this.sphereAt(p, e.timeStamp);
      else this.paintTo(p, e.timeStamp);
    };
    const raw = 'onpointerrawupdate' in window;
    if (raw) on(canvas, 'pointerrawupdate', strokeMove);
    on(canvas, 'pointermove', (e: PointerEvent) => {
      st.timer.activity();
      if (!raw) strokeMove(e);
      // reads (layout) before writes (the cursor ring's style, the read-out's text)
      const p = st.view.toSlice(e.clientX, e.clientY);
      this.updateCursor(e);
      this.v.slices.showCursorInfo(p);
      if (this.panning) {
        const dpr = canvas.width / canvas.getBoundingClientRect().width;
        st.settings.pan = [this.panning.pan[0] + (e.clientX - this.panning.x) * dpr, this.panning.pan[1] + (e.clientY - this.panning.y) * dpr];
        st.view.draw();
        return;
      }
      if (this.crossing === e.pointerId && p) return this.v.multi.moveCrosshair(st.axis, p);
      if (this.leveling) {
        this.v.slices.dragWindow(this.leveling.window, e.clientX - this.leveling.x, e.clientY - this.leveling.y);
        return;
      }
    });
    const endPointer = (e: PointerEvent) => {
      if (this.crossing === e.pointerId) return void (this.crossing = null);
      if (this.panning) return void (this.panning = null);
      if (this.leveling) return void (this.leveling = null);
      if (this.spherePending?.pointer === e.pointerId) return void (this.spherePending.released = true);
      if (this.sphere && e.pointerId === this.sphere.pointer) {
        this.sphere = null;
        return this.afterStep(null);
      }
      if (!this.painting || e.pointerId !== this.painting.pointer) return;
      this.painting = null;
      this.afterStep(null);
    };
    on(canvas, 'pointerup', endPointer);
    on(canvas, 'pointercancel', endPointer);
    on(canvas, 'pointerleave', () => {
      this.v.ui.el.cursor.hidden = true;
      this.v.slices.showCursorInfo(null);
    });
    on(canvas, 'wheel', (e: WheelEvent) => {
      e.preventDefault();
      st.timer.activity();
      if (e.ctrlKey || e.metaKey) {
        const b = canvas.getBoundingClientRect();
        const dpr = canvas.width / b.width;
        const z = zoomAbout(st.settings.zoom, st.settings.pan, e.deltaY < 0 ? 1.15 : 1 / 1.15, (e.clientX - b.left) * dpr, (e.clientY - b.top) * dpr, canvas.width, canvas.height);
        st.settings.zoom = z.zoom;
        st.settings.pan = z.pan;
        st.view.draw();
        this.v.slices.renderZoom();
      } else if (st.is3d) void this.v.slices.showSlice(st.axis, st.index[st.axis] + (e.deltaY > 0 ? 1 : -1), e.timeStamp);
    }, { passive: false });
    const onSpace = (e: KeyboardEvent) => {
      if (e.key === ' ' && (e.target as HTMLElement).tagName !== 'INPUT') {
        this.spaceDown = e.type === 'keydown';
        if (e.type === 'keydown') e.preventDefault();
      }
    };
    on(document, 'keydown', onSpace);
    on(document, 'keyup', onSpace);
  }

  dispose(): void {
    for (const d of this.disposers.splice(0)) d();
  }
}
