/**
 * The brush: a stroke segment between two mouse positions paints every pixel whose centre lies
 * within `radius` of the segment (a capsule), so a fast stroke leaves a continuous band, not a
 * string of discs. Rasterised row by row as exact spans: the capsule is convex, so each row meets
 * it in one interval — the union of its two end discs' and its swept rectangle's intervals.
 *
 * Coordinates are continuous slice coordinates: pixel (i, j) covers [i, i+1) × [j, j+1) and its
 * centre is (i + 0.5, j + 0.5).
 * @module
 */
import type { Rect } from './rect.js';

/** Called once per row span: pixels x0…x1 (inclusive) of row y. */
export type SpanVisitor = (y: number, x0: number, x1: number) => void;

function discInterval(cx: number, cy: number, r: number, yc: number, acc: [number, number]): void {
  const dy = yc - cy;
  if (Math.abs(dy) > r) return;
  const half = Math.sqrt(r * r - dy * dy);
  if (cx - half < acc[0]) acc[0] = cx - half;
  if (cx + half > acc[1]) acc[1] = cx + half;
}

/**
 * Visit the pixels of the capsule from (x0, y0) to (x1, y1) with radius r, as row spans clipped to
 * a `width × height` plane. A single click is a segment of length 0 (a disc).
 * @param width - plane width
 * @param height - plane height
 * @param radius - brush radius in pixels (a brush of size s has radius s / 2)
 * @param visit - called per non-empty span
 * @returns the rectangle of the visited pixels, or null when none
 * @example
 * capsuleSpans(64, 64, 10.5, 10.5, 30.5, 12.5, 2, (y, a, b) => plane.fill(1, y * 64 + a, y * 64 + b + 1));
 */
export function capsuleSpans(width: number, height: number, x0: number, y0: number, x1: number, y1: number, radius: number, visit: SpanVisitor): Rect | null {
  const r = Math.max(0, radius);
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len2 = dx * dx + dy * dy;
  const len = Math.sqrt(len2);
  const rowLo = Math.max(0, Math.ceil(Math.min(y0, y1) - r - 0.5));
  const rowHi = Math.min(height - 1, Math.floor(Math.max(y0, y1) + r - 0.5));
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  const acc: [number, number] = [Infinity, -Infinity];
  for (let y = rowLo; y <= rowHi; y++) {
    const yc = y + 0.5;
    acc[0] = Infinity;
    acc[1] = -Infinity;
    discInterval(x0, y0, r, yc, acc);
    discInterval(x1, y1, r, yc, acc);
    if (len2 > 0) {
      // swept rectangle: 0 ≤ ((P−A)·d)/|d|² ≤ 1 and |d × (P−A)| ≤ r|d|, with P = (x, yc): both linear in x
      const ey = yc - y0;
      let lo = -Infinity, hi = Infinity;
      // projection: t(x) = (dx (x − x0) + dy ey) / len2 ∈ [0, 1]
      if (dx !== 0) {
        const a = x0 + (0 - dy * ey) / dx;
        const b = x0 + (len2 - dy * ey) / dx;
        lo = Math.max(lo, Math.min(a, b));
        hi = Math.min(hi, Math.max(a, b));
      } else {
        const t = (dy * ey) / len2;
        if (t < 0 || t > 1) hi = -Infinity;
      }
      // cross: c(x) = dx ey − dy (x − x0), |c| ≤ r len
      if (dy !== 0) {
        const a = x0 + (dx * ey - r * len) / dy;
        const b = x0 + (dx * ey + r * len) / dy;
        lo = Math.max(lo, Math.min(a, b));
        hi = Math.min(hi, Math.max(a, b));
      } else if (Math.abs(dx * ey) > r * len) {
        hi = -Infinity;
      }
      if (hi >= lo) {
        if (lo < acc[0]) acc[0] = lo;
        if (hi > acc[1]) acc[1] = hi;
      }
    }
    if (!(acc[1] >= acc[0])) continue;
    const a = Math.max(0, Math.ceil(acc[0] - 0.5 - 1e-9));
    const b = Math.min(width - 1, Math.floor(acc[1] - 0.5 + 1e-9));
    if (b < a) continue;
    visit(y, a, b);
    if (a < minX) minX = a;
    if (b > maxX) maxX = b;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  return maxX >= minX ? { x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1 } : null;
}
