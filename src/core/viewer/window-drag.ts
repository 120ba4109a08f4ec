/**
 * Window / level by mouse drag and typed, as 3D Slicer and OHIF do it: dragging right widens the
 * window, dragging down raises the level (the image gets darker), with a speed proportional to the
 * image's value range so CT (thousands of HU) and 8-bit images feel alike.
 * @module
 */
import { presetWindow, windowLevel } from './window.js';

/**
 * The window after a drag of (dx, dy) CSS pixels from `start`.
 * @param start - the window when the drag began, [low, high]
 * @param dx - horizontal drag (right = wider)
 * @param dy - vertical drag (down = higher level)
 * @param range - the image's value range [min, max]: one full-range change per 512 px dragged
 * @returns the new [low, high], width at least 1/1000 of the range
 * @example
 * dragWindow([-160, 240], 100, 0, [-1024, 3071]); // wider by 800 HU
 */
export function dragWindow(start: readonly [number, number], dx: number, dy: number, range: readonly [number, number]): [number, number] {
  const span = Math.max(1e-6, range[1] - range[0]);
  const k = span / 512;
  const { width, level } = windowLevel(start);
  const w = Math.max(span / 1000, width + dx * k * 2);
  return presetWindow({ width: w, level: level + dy * k });
}

/**
 * Parse a typed window: "W/L" ("400/40", "W400 L40", "400 40") or a range "lo…hi" / "lo..hi".
 * @returns [low, high], or null when the text is not a window
 * @example
 * parseWindow('1500/-600'); // [-1350, 150]
 */
export function parseWindow(text: string): [number, number] | null {
  const t = text.trim();
  const num = '(-?\\d+(?:\\.\\d+)?)';
  const range = new RegExp(`^${num}\\s*(?:…|\\.\\.|to)\\s*${num}$`, 'i').exec(t);
  if (range) {
    const lo = Number(range[1]), hi = Number(range[2]);
    return hi > lo ? [lo, hi] : null;
  }
  const wl = new RegExp(`^w?\\s*${num}\\s*(?:/|\\s|,)\\s*l?\\s*${num}$`, 'i').exec(t);
  if (!wl) return null;
  const width = Number(wl[1]), level = Number(wl[2]);
  return width > 0 ? presetWindow({ width, level }) : null;
}
