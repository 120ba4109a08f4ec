import assert from 'node:assert/strict';
import { test } from 'node:test';
import { overlayHeatmap } from '../../src/core/explain/overlay.js';
import { Rng } from '../../src/core/random.js';
import { invertHeatmapComposite } from '../../src/core/viewer/heatmap-composite.js';

/** A smooth blob map and a textured grey (or colour) image, both known. */
function scene(n: number, seed: number, colour: boolean, dark: boolean) {
  const rng = new Rng(seed);
  const map = new Float32Array(n * n);
  const rgb = new Float32Array(n * n * 3);
  const [cx, cy, s] = [rng.random() * n, rng.random() * n, n / 4];
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const i = y * n + x;
      map[i] = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s));
      const g = (dark ? 0.3 : 1) * (0.5 + 0.5 * Math.sin(x / 3) * Math.cos(y / 5)) * rng.random();
      for (let c = 0; c < 3; c++) rgb[3 * i + c] = colour ? rng.random() : g;
    }
  }
  return { map, rgb };
}

test('heat-map composite: the scalar map comes back from show_cam_on_image pictures within 2/255', () => {
  for (const [seed, colour, dark] of [[1, false, false], [2, false, true], [3, true, false], [4, true, true]] as const) {
    const { map, rgb } = scene(48, seed, colour, dark);
    const png = overlayHeatmap(rgb, map);
    const { map: back, rmse } = invertHeatmapComposite(png, rgb);
    let worst = 0;
    for (let i = 0; i < map.length; i++) worst = Math.max(worst, Math.abs(back[i]! - Math.round(255 * map[i]!)));
    assert.ok(worst <= 2, `seed ${seed}: worst error ${worst}/255`);
    assert.ok(rmse < 0.01, `seed ${seed}: rmse ${rmse}`);
    // and drawing the recovered map again gives the stored picture back
    const again = overlayHeatmap(rgb, Float32Array.from(back, (v) => v / 255));
    let d = 0;
    for (let i = 0; i < png.length; i++) d = Math.max(d, Math.abs(again[i]! - png[i]!));
    assert.ok(d <= 3, `seed ${seed}: redrawn picture differs by ${d}`);
  }
});

test('heat-map composite: a picture drawn on another image is recognised by its fit error', () => {
  const a = scene(32, 5, false, false);
  const b = scene(32, 6, true, false);
  const { rmse } = invertHeatmapComposite(overlayHeatmap(a.rgb, a.map), b.rgb);
  assert.ok(rmse > 0.05, `rmse ${rmse}`);
  assert.throws(() => invertHeatmapComposite(new Uint8Array(6), new Float32Array(9)), /2 pixels but the image 3/);
});
