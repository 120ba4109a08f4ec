/**
 * Where a slice sits on the canvas: fitted into the view with its pixel aspect, zoomed about a
 * point and panned, optionally drawn bottom-up. Converts between canvas pixels and continuous
 * slice coordinates (pixel (i, j) covers [i, i+1) × [j, j+1)).
 * @module
 */

/** Placement of a slice on a canvas. */
export interface Viewport {
  /** Canvas size, device pixels. */
  canvasW: number;
  canvasH: number;
  /** Slice size, pixels. */
  sliceW: number;
  sliceH: number;
  /** Canvas pixels per slice pixel, across and down. */
  scaleX: number;
  scaleY: number;
  /** Canvas position of slice coordinate (0, 0) (or (0, sliceH) when flipped). */
  offsetX: number;
  offsetY: number;
  /** Rows drawn bottom-up. */
  flipY: boolean;
}

/**
 * Fit a slice into a canvas, centred, keeping its aspect; `zoom` > 1 magnifies, `pan` shifts in
 * canvas pixels.
 * @param aspect - height / width of one slice pixel (see `pixelAspect`)
 * @example
 * const vp = fitViewport(1024, 1024, 512, 512, 1); // scaleX = scaleY = 2
 */
export function fitViewport(canvasW: number, canvasH: number, sliceW: number, sliceH: number, aspect = 1, zoom = 1, pan: [number, number] = [0, 0], flipY = false): Viewport {
  const fit = Math.min(canvasW / sliceW, canvasH / (sliceH * aspect));
  const scaleX = fit * zoom;
  const scaleY = fit * zoom * aspect;
  const offsetX = (canvasW - sliceW * scaleX) / 2 + pan[0];
  const offsetY = (canvasH - sliceH * scaleY) / 2 + pan[1];
  return { canvasW, canvasH, sliceW, sliceH, scaleX, scaleY, offsetX, offsetY, flipY };
}

/**
 * Canvas pixel → continuous slice coordinates.
 * @example
 * canvasToSlice(vp, 512, 512); // { x: 256, y: 256 } for the 1024/512 example
 */
export function canvasToSlice(vp: Viewport, cx: number, cy: number): { x: number; y: number } {
  const x = (cx - vp.offsetX) / vp.scaleX;
  const yv = (cy - vp.offsetY) / vp.scaleY;
  return { x, y: vp.flipY ? vp.sliceH - yv : yv };
}

/** Continuous slice coordinates → canvas pixel. */
export function sliceToCanvas(vp: Viewport, x: number, y: number): { x: number; y: number } {
  const yv = vp.flipY ? vp.sliceH - y : y;
  return { x: vp.offsetX + x * vp.scaleX, y: vp.offsetY + yv * vp.scaleY };
}

/**
 * The canvas rectangle (integer, covering) of a slice pixel rectangle, for partial redraws.
 */
export function sliceRectToCanvas(vp: Viewport, r: { x: number; y: number; w: number; h: number }): { x: number; y: number; w: number; h: number } {
  const a = sliceToCanvas(vp, r.x, r.y);
  const b = sliceToCanvas(vp, r.x + r.w, r.y + r.h);
  const x0 = Math.floor(Math.min(a.x, b.x));
  const y0 = Math.floor(Math.min(a.y, b.y));
  return { x: x0, y: y0, w: Math.ceil(Math.max(a.x, b.x)) - x0, h: Math.ceil(Math.max(a.y, b.y)) - y0 };
}

/**
 * Zoom about a canvas point so that point stays under the cursor.
 * @returns the new zoom and pan
 */
export function zoomAbout(zoom: number, pan: [number, number], factor: number, cx: number, cy: number, canvasW: number, canvasH: number): { zoom: number; pan: [number, number] } {
  const z = Math.max(0.25, Math.min(32, zoom * factor));
  const f = z / zoom;
  // the image centre sits at canvas centre + pan; a point p keeps its place if (p − c − pan) scales by f
  const ccx = canvasW / 2 + pan[0];
  const ccy = canvasH / 2 + pan[1];
  return { zoom: z, pan: [pan[0] + (cx - ccx) * (1 - f), pan[1] + (cy - ccy) * (1 - f)] };
}
