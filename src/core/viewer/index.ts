/**
 * The review UI's slice viewer and mask editor, as pure functions and small classes over typed
 * arrays: windowing, colour maps and legends, composing image + heat map + labels into RGBA with
 * dirty rectangles, the brush along the path between mouse positions, flood fill (2D and through a
 * slice range), hole filling, sparse edits with compact per-slice diffs, deep undo / redo, flagged
 * regions of an attention map, viewport maths and time on case. No DOM: the web app passes in
 * ImageData buffers and mouse positions; everything here is unit-tested in Node.
 * @module
 */
export * from './rect.js';
export * from './window.js';
export * from './colormap.js';
export * from './compose.js';
export * from './brush.js';
export * from './fill.js';
export * from './diff.js';
export * from './edits.js';
export * from './history.js';
export * from './editor.js';
export * from './slicing.js';
export * from './viewport.js';
export * from './regions.js';
export * from './timer.js';
export * from './slice-format.js';
export * from './heatmap-composite.js';
export * from './window-drag.js';
export * from './bounded-fill.js';
export * from './sphere.js';
export * from './interpolate.js';
export * from './restore.js';
export * from './orientation.js';
