/**
 * Integer pixel rectangles for dirty-rectangle redraws: `[x, x + w) × [y, y + h)` in slice pixels.
 * @module
 */

/** A half-open pixel rectangle. */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * The smallest rectangle holding both (either may be null = empty).
 * @example
 * unionRect({ x: 0, y: 0, w: 2, h: 2 }, { x: 3, y: 1, w: 1, h: 1 }); // { x: 0, y: 0, w: 4, h: 2 }
 */
export function unionRect(a: Rect | null, b: Rect | null): Rect | null {
  if (!a) return b;
  if (!b) return a;
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}

/**
 * Clip a rectangle to a `width × height` plane.
 * @returns the clipped rectangle, or null when nothing is left
 * @example
 * clipRect({ x: -2, y: 5, w: 6, h: 10 }, 8, 8); // { x: 0, y: 5, w: 4, h: 3 }
 */
export function clipRect(r: Rect, width: number, height: number): Rect | null {
  const x0 = Math.max(0, r.x);
  const y0 = Math.max(0, r.y);
  const x1 = Math.min(width, r.x + r.w);
  const y1 = Math.min(height, r.y + r.h);
  return x1 > x0 && y1 > y0 ? { x: x0, y: y0, w: x1 - x0, h: y1 - y0 } : null;
}

/**
 * Grow a rectangle by `by` pixels on every side (e.g. for label outlines, whose look depends on
 * the neighbours).
 * @example
 * growRect({ x: 4, y: 4, w: 1, h: 1 }, 1); // { x: 3, y: 3, w: 3, h: 3 }
 */
export function growRect(r: Rect, by: number): Rect {
  return { x: r.x - by, y: r.y - by, w: r.w + 2 * by, h: r.h + 2 * by };
}
