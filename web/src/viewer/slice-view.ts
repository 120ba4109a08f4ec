/**
 * A slice on a canvas, drawn with Canvas 2D and ImageData: the windowed image, heat map and labels
 * are composed into an RGBA buffer at slice resolution (src/core/viewer/compose.ts), put on a
 * slice-sized canvas, and scaled onto the visible canvas with nearest-neighbour sampling. A brush
 * move recomposes and redraws only its dirty rectangle.
 */
import {
  canvasToSlice, sliceToCanvas, composeRgba, fitViewport, growRect, clipRect, magmaLut256, sliceRectToCanvas, windowRect, windowToGrey, type LayerArray, type Rect, type Viewport,
} from '../../../src/core/viewer/index.js';
import type { OverlayKind } from '../api.js';

/** Display settings. */
export interface ViewSettings {
  window: [number, number];
  showLabels: boolean;
  labelOpacity: number;
  outline: boolean;
  heatKind: OverlayKind | null;
  showHeat: boolean;
  heatOpacity: number;
  zoom: number;
  pan: [number, number];
}

/** What is on screen. */
export interface ViewContent {
  width: number;
  height: number;
  image: LayerArray;
  /** Labels shown (base + edits); the editor writes into this array. */
  labels: Uint8Array;
  overlays: Partial<Record<OverlayKind, Uint8Array>>;
  /** Height / width of a pixel. */
  aspect: number;
  flipY: boolean;
}

/** The slice canvas. */
export class SliceView {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private src: HTMLCanvasElement;
  private srcCtx: CanvasRenderingContext2D;
  private img: ImageData | null = null;
  private grey = new Uint8Array(0);
  private content: ViewContent | null = null;
  vp: Viewport | null = null;
  /** Milliseconds of the last full draw (compose + blit). */
  lastDrawMs = 0;
  /** Called after each full draw (the viewport may have moved: overlays in CSS pixels follow). */
  onDraw: (() => void) | null = null;

  constructor(
    readonly settings: ViewSettings,
    private readonly lut: () => Uint8Array,
    private readonly interactive = true,
  ) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'slice-canvas';
    this.ctx = this.canvas.getContext('2d', { alpha: false })!;
    this.src = document.createElement('canvas');
    this.srcCtx = this.src.getContext('2d', { alpha: false, willReadFrequently: false })!;
  }

  get hasContent(): boolean {
    return this.content !== null;
  }

  /** Match the canvas to its box (device pixels). */
  resize(): boolean {
    const r = this.canvas.getBoundingClientRect();
    const dpr = Math.min(2, window.devicePixelRatio || 1);
    const w = Math.max(1, Math.round(r.width * dpr));
    const h = Math.max(1, Math.round(r.height * dpr));
    if (w === this.canvas.width && h === this.canvas.height) return false;
    this.canvas.width = w;
    this.canvas.height = h;
    return true;
  }

  /** Show a slice (full compose and draw). */
  show(c: ViewContent): void {
    this.content = c;
    if (this.src.width !== c.width || this.src.height !== c.height) {
      this.src.width = c.width;
      this.src.height = c.height;
      this.img = null;
    }
    if (!this.img) this.img = this.srcCtx.createImageData(c.width, c.height);
    if (this.grey.length !== c.width * c.height) this.grey = new Uint8Array(c.width * c.height);
    windowToGrey(c.image as never, this.grey, this.settings.window);
    this.recompose(null);
  }

  /** Re-window the whole slice (window change). */
  rewindow(): void {
    if (!this.content) return;
    windowToGrey(this.content.image as never, this.grey, this.settings.window);
    this.recompose(null);
  }

  private layers() {
    const c = this.content!;
    const s = this.settings;
    const heat = s.showHeat && s.heatKind ? (c.overlays[s.heatKind] ?? null) : null;
    return { grey: this.grey, labels: s.showLabels ? c.labels : null, labelLut: this.lut(), labelOpacity: s.labelOpacity, labelOutline: s.outline, heat, heatLut: magmaLut256(), heatOpacity: s.heatOpacity };
  }

  /** Recompose `rect` (null: everything) and draw it. */
  recompose(rect: Rect | null): void {
    const c = this.content;
    if (!c || !this.img) return;
    const t0 = performance.now();
    const r = rect ? clipRect(this.settings.outline ? growRect(rect, 1) : rect, c.width, c.height) : { x: 0, y: 0, w: c.width, h: c.height };
    if (!r) return;
    composeRgba(this.img.data, c.width, c.height, this.layers(), r);
    this.srcCtx.putImageData(this.img, 0, 0, r.x, r.y, r.w, r.h);
    if (rect) this.blit(r);
    else this.draw();
    if (!rect) this.lastDrawMs = performance.now() - t0;
  }

  /** Re-window a rectangle (e.g. nothing but the image changed there). */
  rewindowRect(r: Rect): void {
    if (!this.content) return;
    windowRect(this.content.image as never, this.grey, this.content.width, r, this.settings.window);
    this.recompose(r);
  }

  private viewport(): Viewport {
    const c = this.content!;
    const s = this.settings;
    this.vp = fitViewport(this.canvas.width, this.canvas.height, c.width, c.height, c.aspect, s.zoom, s.pan, c.flipY);
    return this.vp;
  }

  private setTransform(vp: Viewport): void {
    if (vp.flipY) this.ctx.setTransform(vp.scaleX, 0, 0, -vp.scaleY, vp.offsetX, vp.offsetY + vp.sliceH * vp.scaleY);
    else this.ctx.setTransform(vp.scaleX, 0, 0, vp.scaleY, vp.offsetX, vp.offsetY);
  }

  /** Draw the whole view. */
  draw(): void {
    this.resize();
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.content) return;
    const vp = this.viewport();
    ctx.imageSmoothingEnabled = false;
    this.setTransform(vp);
    ctx.drawImage(this.src, 0, 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    this.onDraw?.();
  }

  /** Draw one slice rectangle only. */
  private blit(r: Rect): void {
    const vp = this.vp ?? this.viewport();
    const ctx = this.ctx;
    ctx.imageSmoothingEnabled = false;
    this.setTransform(vp);
    ctx.drawImage(this.src, r.x, r.y, r.w, r.h, r.x, r.y, r.w, r.h);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  /** Redraw now when the canvas's box changed size since the last draw (before a resize observer runs). */
  private sync(): void {
    if (this.content && this.resize()) this.draw();
  }

  /**
   * Client (CSS) coordinates → continuous slice coordinates. `box` is the canvas's client rectangle
   * when the caller holds one (a stroke reads it once at pointer-down: reading it per move would
   * force a style and layout pass after the cursor's style writes, on the latency path).
   */
  toSlice(clientX: number, clientY: number, box?: DOMRect): { x: number; y: number } | null {
    if (!box) this.sync();
    if (!this.vp) return null;
    const b = box ?? this.canvas.getBoundingClientRect();
    const sx = this.canvas.width / b.width;
    const sy = this.canvas.height / b.height;
    return canvasToSlice(this.vp, (clientX - b.left) * sx, (clientY - b.top) * sy);
  }

  /** Slice rectangle → CSS pixels relative to the canvas (for markers). */
  toCss(r: Rect): { x: number; y: number; w: number; h: number } | null {
    if (!this.vp) return null;
    const b = this.canvas.getBoundingClientRect();
    const c = sliceRectToCanvas(this.vp, r);
    const kx = b.width / this.canvas.width, ky = b.height / this.canvas.height;
    return { x: c.x * kx, y: c.y * ky, w: c.w * kx, h: c.h * ky };
  }

  /** Continuous slice coordinates → client (CSS) coordinates, exactly. */
  toClient(x: number, y: number): { x: number; y: number } | null {
    this.sync();
    if (!this.vp) return null;
    const b = this.canvas.getBoundingClientRect();
    const c = sliceToCanvas(this.vp, x, y);
    return { x: b.left + (c.x * b.width) / this.canvas.width, y: b.top + (c.y * b.height) / this.canvas.height };
  }

  /** Canvas CSS pixels per slice pixel (across). */
  cssScale(): number {
    if (!this.vp) return 1;
    return (this.vp.scaleX * this.canvas.getBoundingClientRect().width) / this.canvas.width;
  }

  /** Current content. */
  get shown(): ViewContent | null {
    return this.content;
  }

  /** Is this view interactive (the main one) or a read-only comparison. */
  get isInteractive(): boolean {
    return this.interactive;
  }
}

let warmed = false;

/**
 * Run the per-pixel drawing path (windowing, composing, putting) on small synthetic slices, once
 * per page, so the JavaScript engine has compiled it before the first real slice arrives. Without
 * it the first slice a page draws runs that code in the interpreter: measured in issue 18 (headless
 * Chromium, busy machine), windowing and composing the first 512² CT slice took 120 + 206 ms and
 * the same work on the next case 1.4 + 18 ms. Called while the page waits (the queue, the network).
 */
export function warmUpDrawing(): void {
  if (warmed) return;
  warmed = true;
  const n = 128;
  const labels = new Uint8Array(n * n);
  const heat = new Uint8Array(n * n);
  const ct = new Int16Array(n * n);
  const grey = new Uint8Array(n * n);
  for (let i = 0; i < n * n; i++) {
    ct[i] = ((i * 37) % 2000) - 1000;
    grey[i] = i & 255;
    labels[i] = (i >> 9) % 4;
    heat[i] = (i * 7) & 255;
  }
  const lut = new Uint8Array(256 * 4).fill(200);
  const settings: ViewSettings = { window: [-160, 240], showLabels: true, labelOpacity: 0.45, outline: false, heatKind: 'attention', showHeat: true, heatOpacity: 0.4, zoom: 1, pan: [0, 0] };
  const view = new SliceView(settings, () => lut, false);
  for (let round = 0; round < 6; round++) {
    for (const image of [ct, grey]) {
      view.show({ width: n, height: n, image, labels, overlays: { attention: heat }, aspect: 1, flipY: false });
      view.recompose({ x: 3, y: 5, w: 17, h: 9 });
    }
  }
}
