/**
 * What is on screen: which slice of which axis, fetched through the slice cache with the unsaved
 * edits laid over it; the display window (presets, typed, dragged); zoom; orientation letters;
 * the value and label under the cursor; flagged-region jumps. Slice numbers are 1-based on screen.
 */
import {
  CT_PRESETS, dragWindow, flipRows, orientationLabels, parseWindow, pixelAspect, presetWindow, viewDims, voxelToView, windowLevel, type ViewAxis,
} from '../../../src/core/viewer/index.js';
import { describeError } from '../api.js';
import { perf } from '../perf.js';
import { toast } from '../ui.js';
import type { CachedSlice } from './slice-cache.js';
import type { Viewer } from './state.js';

/** Axis names as on screen. */
export function axisName(a: ViewAxis): string {
  return a === 'z' ? 'axial' : a === 'y' ? 'coronal' : 'sagittal';
}

/** The slice navigation and display controller. */
export class Navigation {
  private wanted = '';
  private markerTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly v: Viewer) {}

  depth(): number {
    return viewDims(this.v.st.shape, this.v.st.axis).depth;
  }

  /** A cached slice's labels with the unsaved edits laid over them. */
  labelsFor(s: CachedSlice): Uint8Array {
    const l = s.labels.slice();
    this.v.st.editor.edits.applyToSlice(s.axis, s.index, l);
    return l;
  }

  present(s: CachedSlice): void {
    const { st, ui } = this.v;
    const axisChanged = st.displayed?.axis !== s.axis;
    st.displayed = s;
    st.displayLabels = this.labelsFor(s);
    const flipY = flipRows(st.info.direction, s.axis);
    st.view.show({ width: s.width, height: s.height, image: s.image, labels: st.displayLabels, overlays: s.overlays, aspect: pixelAspect(st.info.spacing, s.axis), flipY });
    ui.el.sliceLabel.textContent = st.is3d ? `${axisName(s.axis)} ${s.index + 1} / ${this.depth()}` : `${s.width}×${s.height}`;
    ui.el.slider.max = String(this.depth() - 1);
    ui.el.slider.value = String(s.index);
    // a 2D picture (PNG, JPEG) states no patient orientation: letters only for volumes
    const o = st.is3d ? orientationLabels(st.info.direction, s.axis, flipY) : null;
    for (const side of ['top', 'bottom', 'left', 'right'] as const) ui.el.orient[side].textContent = o ? o[side] : '';
    this.renderZoom();
    // the crosshair follows the main view's slice; the side views change planes with its axis
    if (axisChanged) void this.v.multi.refresh();
    else this.v.multi.placeCrosshairs();
  }

  async showSlice(a: ViewAxis, i: number, t0 = performance.now()): Promise<void> {
    const { st, ui } = this.v;
    i = Math.max(0, Math.min(viewDims(st.shape, a).depth - 1, i));
    st.axis = a;
    st.index[a] = i;
    const k = `${a}:${i}:${st.baseVersion}`;
    this.wanted = k;
    const hit = st.cache.get(a, i, st.baseVersion);
    if (hit) {
      this.present(hit);
      ui.el.sliceLoading.hidden = true;
      perf.record('slice_change', performance.now() - t0);
    } else {
      const spin = setTimeout(() => (ui.el.sliceLoading.hidden = false), 120);
      try {
        const s = await st.cache.load(a, i, st.baseVersion);
        if (this.wanted !== k || st.closed) return;
        this.present(s);
        perf.record('slice_change', performance.now() - t0);
      } catch (e) {
        if (this.wanted === k) toast(`Slice ${i + 1} could not be loaded: ${describeError(e)}`, 'error');
      } finally {
        clearTimeout(spin);
        if (this.wanted === k) ui.el.sliceLoading.hidden = true;
      }
    }
    ui.renderHeader();
    if (st.is3d) st.cache.prefetch(a, i, st.baseVersion, viewDims(st.shape, a).depth);
  }

  redraw(): void {
    if (this.v.st.displayed) this.v.st.view.recompose(null);
    this.v.multi.redraw();
  }

  setAxis(a: ViewAxis): void {
    const { st } = this.v;
    if (!st.is3d || a === st.axis) return;
    st.settings.zoom = 1;
    st.settings.pan = [0, 0];
    void this.showSlice(a, st.index[a]);
  }

  // ── window ──
  setWindow(id: string): void {
    const { st, ui } = this.v;
    const p = CT_PRESETS.find((x) => x.id === id);
    st.settings.window = p ? presetWindow(p) : st.info.window;
    ui.el.windowSel.value = p ? id : 'auto';
    st.view.rewindow();
    this.v.multi.redraw();
    ui.renderHeader();
  }
  /** Set any window (typed, dragged). */
  customWindow(w: [number, number]): void {
    const { st, ui } = this.v;
    st.settings.window = w;
    ui.el.windowSel.value = 'custom';
    st.view.rewindow();
    this.v.multi.redraw();
    ui.renderHeader();
  }
  typedWindow(text: string): void {
    const w = parseWindow(text);
    if (!w) return void toast(`"${text}" is not a window: type width/level (400/40) or a range (-100..300).`, 'error');
    this.customWindow(w);
  }
  /** The window for a W/L drag of (dx, dy) CSS pixels from `start`. */
  dragWindow(start: [number, number], dx: number, dy: number): void {
    this.customWindow(dragWindow(start, dx, dy, this.v.st.info.range));
  }
  cycleWindow(): void {
    const { st, ui } = this.v;
    const opts = [...ui.el.windowSel.options].filter((o) => !o.hidden).map((o) => o.value);
    this.setWindow(opts[(opts.indexOf(ui.el.windowSel.value) + 1) % opts.length]!);
    const wl = windowLevel(st.settings.window);
    toast(`Window W${wl.width} L${wl.level}`);
  }

  // ── zoom ──
  resetZoom(): void {
    const { st } = this.v;
    st.settings.zoom = 1;
    st.settings.pan = [0, 0];
    st.view.draw();
    this.renderZoom();
  }
  renderZoom(): void {
    const { st, ui } = this.v;
    ui.el.zoomLabel.textContent = `${Math.round(st.view.cssScale() * 100)} %`;
  }

  /** Value (HU for CT) and label under the cursor, 1-based voxel position. */
  showCursorInfo(p: { x: number; y: number } | null): void {
    const { st, ui } = this.v;
    const s = st.displayed;
    if (!p || !s || !st.displayLabels) return void (ui.el.cursorInfo.textContent = '');
    const x = Math.floor(p.x), y = Math.floor(p.y);
    if (x < 0 || y < 0 || x >= s.width || y >= s.height) return void (ui.el.cursorInfo.textContent = '');
    const q = x + s.width * y;
    const value = s.image.length === s.width * s.height ? s.image[q]! : undefined;
    const lab = st.displayLabels[q]!;
    const name = lab ? (st.legend.find((e) => e.value === lab)?.name ?? `label ${lab}`) : 'background';
    const unit = st.info.modality === 'ct' ? ' HU' : '';
    const ijk = s.axis === 'z' ? [x, y, s.index] : s.axis === 'y' ? [x, s.index, y] : [s.index, x, y];
    ui.el.cursorInfo.textContent = `(${ijk.map((c) => c + 1).join(', ')}) ${value === undefined ? '' : `${Number.isInteger(value) ? value : value.toFixed(2)}${unit} · `}${name}`;
  }

  // ── regions ──
  jumpToRegion(i: number): void {
    const { st, ui } = this.v;
    const r = st.regions[i];
    if (!r) return;
    st.regionCursor = i;
    ui.renderRegions();
    const [pi, pj, pk] = r.peakAt;
    const a = st.axis;
    const at = voxelToView(a, pi, pj, pk);
    void this.showSlice(a, at.index).then(() => {
      const b = voxelToView(a, r.min[0], r.min[1], r.min[2]);
      const e = voxelToView(a, r.max[0], r.max[1], r.max[2]);
      const css = st.view.toCss({ x: Math.min(b.q, e.q), y: Math.min(b.r, e.r), w: Math.abs(e.q - b.q) + 1, h: Math.abs(e.r - b.r) + 1 });
      if (!css) return;
      ui.el.marker.hidden = false;
      Object.assign(ui.el.marker.style, { left: `${css.x - 4}px`, top: `${css.y - 4}px`, width: `${css.w + 8}px`, height: `${css.h + 8}px` });
      clearTimeout(this.markerTimer);
      this.markerTimer = setTimeout(() => (ui.el.marker.hidden = true), 2500);
    });
  }

  dispose(): void {
    clearTimeout(this.markerTimer);
  }
}
