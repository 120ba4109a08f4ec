/**
 * Layouts: one view, or three (the main view plus the two other planes, as 3D Slicer's and
 * ITK-SNAP's axial / coronal / sagittal layouts) with a linked crosshair. The crosshair is the
 * voxel (index.x, index.y, index.z) of the state: every view shows the slice through it along its
 * own axis, and draws the crosshair's two lines. Clicking (or dragging) in a side view, or in the
 * main view with the crosshair tool, moves the crosshair and so the slices of the other views.
 * Side views are read-only; double-click one to make it the main (editable) view. The layout
 * chosen is remembered in this browser.
 */
import { flipRows, pixelAspect, viewDims, viewToVoxel, voxelToView, type ViewAxis } from '../../../src/core/viewer/index.js';
import { h } from '../ui.js';
import { axisName } from './navigation.js';
import { SliceView, type ViewSettings } from './slice-view.js';
import type { Viewer } from './state.js';

/** Number of views on screen. */
export type LayoutKind = 1 | 3;

const LAYOUT_KEY = 'medmask.viewer.layout';

/** The layout remembered in this browser (1 when none or unreadable). */
export function rememberedLayout(): LayoutKind {
  try {
    return localStorage.getItem(LAYOUT_KEY) === '3' ? 3 : 1;
  } catch {
    return 1;
  }
}

/** Display settings of a side view: the main view's window and overlays, its own zoom (fit). */
class LinkedSettings implements ViewSettings {
  zoom = 1;
  pan: [number, number] = [0, 0];
  constructor(private readonly m: ViewSettings) {}
  get window() {
    return this.m.window;
  }
  get showLabels() {
    return this.m.showLabels;
  }
  get labelOpacity() {
    return this.m.labelOpacity;
  }
  get outline() {
    return this.m.outline;
  }
  get heatKind() {
    return this.m.heatKind;
  }
  get showHeat() {
    return this.m.showHeat;
  }
  get heatOpacity() {
    return this.m.heatOpacity;
  }
}

/** Crosshair lines over one view. */
class Crosshair {
  readonly h = h('div', { class: 'cross cross-h', hidden: true });
  readonly v = h('div', { class: 'cross cross-v', hidden: true });
  /** Place the lines through pixel (q, r) of `view` (CSS pixels relative to the view's box). */
  place(view: SliceView, q: number, r: number, show: boolean): void {
    const c = show ? view.toCss({ x: q, y: r, w: 1, h: 1 }) : null;
    this.h.hidden = this.v.hidden = !c;
    if (!c) return;
    this.h.style.top = `${Math.round(c.y + c.h / 2)}px`;
    this.v.style.left = `${Math.round(c.x + c.w / 2)}px`;
  }
}

/** One side view. */
class SideView {
  readonly view: SliceView;
  readonly label = h('span', { class: 'view-label' });
  readonly box: HTMLElement;
  readonly cross = new Crosshair();
  axis: ViewAxis = 'y';
  /** The slice shown (`axis:index:version`) and the one asked for. */
  shownKey = '';
  wanted = '';

  constructor(settings: ViewSettings, lut: () => Uint8Array) {
    this.view = new SliceView(new LinkedSettings(settings), lut, false);
    this.box = h('div', { class: 'side-view' }, this.view.canvas, this.cross.h, this.cross.v, this.label);
  }
}

/** The layout controller. */
export class MultiView {
  kind: LayoutKind;
  /** The element holding the views (the main canvas box and the side views). */
  readonly grid: HTMLElement;
  readonly mainCross = new Crosshair();
  private readonly sides: [SideView, SideView];
  private readonly observer: ResizeObserver;
  private drag: { side: SideView; pointer: number } | null = null;

  constructor(private readonly v: Viewer) {
    const st = v.st;
    this.kind = st.is3d ? rememberedLayout() : 1;
    this.sides = [new SideView(st.settings, () => st.visibleLut()), new SideView(st.settings, () => st.visibleLut())];
    this.grid = h('div', { class: 'views', 'data-layout': String(this.kind) });
    for (const s of this.sides) this.install(s);
    this.observer = new ResizeObserver(() => {
      for (const s of this.sides) if (s.view.resize()) s.view.draw();
      this.placeCrosshairs();
    });
  }

  /** Put the main canvas box and the side views into the grid (once the layout has built the box). */
  mount(mainBox: HTMLElement): void {
    mainBox.append(this.mainCross.h, this.mainCross.v);
    this.grid.append(mainBox, ...this.sides.map((s) => s.box));
    for (const s of this.sides) this.observer.observe(s.box);
    this.applyKind();
  }

  /** Side views' axes: the two that are not the main view's. */
  private sideAxes(): [ViewAxis, ViewAxis] {
    const rest = (['z', 'y', 'x'] as ViewAxis[]).filter((a) => a !== this.v.st.axis);
    return [rest[0]!, rest[1]!];
  }

  private applyKind(): void {
    this.grid.dataset.layout = String(this.kind);
    for (const s of this.sides) s.box.hidden = this.kind === 1;
  }

  /** Switch between one and three views (remembered in this browser). */
  setLayout(kind: LayoutKind): void {
    const { st, ui } = this.v;
    if (!st.is3d) return;
    this.kind = kind;
    try {
      localStorage.setItem(LAYOUT_KEY, String(kind));
    } catch {
      // private mode: the layout is not remembered
    }
    this.applyKind();
    // the main view's box changed size: the page's resize observer redraws it
    ui.renderHeader();
    void this.refresh();
  }

  /**
   * Bring the side views to the crosshair: load the slices they lack, relabel those they show
   * (unsaved edits), and place every crosshair line.
   */
  async refresh(): Promise<void> {
    const { st } = this.v;
    if (this.kind === 1 || !st.is3d) return void this.placeCrosshairs();
    const axes = this.sideAxes();
    await Promise.all(this.sides.map(async (s, n) => {
      const a = axes[n]!;
      s.axis = a;
      s.box.dataset.axis = a;
      const i = st.index[a];
      const key = `${a}:${i}:${st.baseVersion}`;
      s.wanted = key;
      s.label.textContent = `${axisName(a)} ${i + 1} / ${viewDims(st.shape, a).depth}`;
      if (s.shownKey === key) return;
      const c = await st.cache.load(a, i, st.baseVersion).catch(() => null);
      if (!c || s.wanted !== key || st.closed) return;
      s.view.resize();
      s.view.show({ width: c.width, height: c.height, image: c.image, labels: this.v.slices.labelsFor(c), overlays: c.overlays, aspect: pixelAspect(st.info.spacing, a), flipY: flipRows(st.info.direction, a) });
      s.shownKey = key;
    }));
    this.placeCrosshairs();
  }

  /** Recompose the side views (display settings or labels changed). */
  redraw(): void {
    if (this.kind === 1) return;
    const st = this.v.st;
    for (const s of this.sides) {
      const c = s.view.shown;
      if (!c || !s.shownKey) continue;
      const [a, i, ver] = s.shownKey.split(':');
      const cached = st.cache.get(a as ViewAxis, Number(i), Number(ver));
      if (cached) c.labels.set(this.v.slices.labelsFor(cached));
      s.view.show(c);
    }
  }

  /** Draw the crosshair's lines in every view (none in the one-view layout). */
  placeCrosshairs(): void {
    const st = this.v.st;
    const on = this.kind === 3 && st.is3d;
    const at = (a: ViewAxis) => voxelToView(a, st.index.x, st.index.y, st.index.z);
    const m = at(st.axis);
    this.mainCross.place(st.view, m.q, m.r, on && st.view.hasContent);
    for (const s of this.sides) {
      const p = at(s.axis);
      s.cross.place(s.view, p.q, p.r, on && s.view.hasContent);
    }
  }

  /**
   * Move the crosshair to pixel `p` of the slice shown along `a`, and the other views with it.
   */
  moveCrosshair(a: ViewAxis, p: { x: number; y: number }): void {
    const { st } = this.v;
    const { width, height } = viewDims(st.shape, a);
    const q = Math.max(0, Math.min(width - 1, Math.floor(p.x))), r = Math.max(0, Math.min(height - 1, Math.floor(p.y)));
    const vox = viewToVoxel(st.shape, a, st.index[a], q, r);
    const [nx, ny] = st.shape;
    st.index.x = vox % nx;
    st.index.y = Math.floor(vox / nx) % ny;
    st.index.z = Math.floor(vox / (nx * ny));
    if (a !== st.axis) void this.v.slices.showSlice(st.axis, st.index[st.axis]);
    void this.refresh();
  }

  /** Make a side view's axis the main view's. */
  private promote(s: SideView): void {
    this.v.slices.setAxis(s.axis);
  }

  private install(s: SideView): void {
    const c = s.view.canvas;
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      const p = s.view.toSlice(e.clientX, e.clientY);
      if (!p) return;
      this.drag = { side: s, pointer: e.pointerId };
      c.setPointerCapture(e.pointerId);
      this.moveCrosshair(s.axis, p);
    });
    c.addEventListener('pointermove', (e) => {
      if (this.drag?.side !== s || this.drag.pointer !== e.pointerId) return;
      const p = s.view.toSlice(e.clientX, e.clientY);
      if (p) this.moveCrosshair(s.axis, p);
    });
    const end = (e: PointerEvent) => {
      if (this.drag?.pointer === e.pointerId) this.drag = null;
    };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
    c.addEventListener('dblclick', () => this.promote(s));
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const st = this.v.st;
      st.index[s.axis] = Math.max(0, Math.min(viewDims(st.shape, s.axis).depth - 1, st.index[s.axis] + (e.deltaY > 0 ? 1 : -1)));
      void this.refresh();
    }, { passive: false });
  }

  /** Test hook: the slice index a side view along `a` has drawn (null: none). */
  shownIndex(a: ViewAxis): number | null {
    const s = this.sides.find((t) => t.axis === a && this.kind === 3 && t.shownKey);
    return s ? Number(s.shownKey.split(':')[1]) : null;
  }

  /** Test hook: client coordinates of a side view's slice position. */
  sideToClient(a: ViewAxis, x: number, y: number): { x: number; y: number } | null {
    const s = this.sides.find((t) => t.axis === a && this.kind === 3);
    return s ? s.view.toClient(x, y) : null;
  }

  dispose(): void {
    this.observer.disconnect();
  }
}
