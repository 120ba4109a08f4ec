/**
 * A seeded image-classification data set with a known visual rule, for head-training tests: grey
 * 8-bit PNGs of noise with one striped disc at a random place; the class is the stripe direction
 * ("horizontal" / "vertical"). Position does not matter (global pooling cannot see it), texture
 * does — a task none of the fixture backbones was trained for (their weights are random).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../../src/core/random.js';

export interface StripesOptions {
  n: number;
  seed: number;
  /** Image width and height (default 96 × 128). */
  width?: number;
  height?: number;
  /** Share of "vertical" images (default 0.35: imbalanced on purpose). */
  verticalRate?: number;
}

/** Write DIR/images/img_000.png … and DIR/labels.csv (image,label); returns the labels. */
export async function writeStripesDataset(dir: string, o: StripesOptions): Promise<string[]> {
  const W = o.width ?? 96;
  const H = o.height ?? 128;
  const rand = mulberry32(o.seed);
  mkdirSync(join(dir, 'images'), { recursive: true });
  const labels: string[] = [];
  const lines = ['image,label'];
  for (let i = 0; i < o.n; i++) {
    const vertical = rand() < (o.verticalRate ?? 0.35);
    const r = 20 + rand() * 10;
    const cx = r + rand() * (W - 2 * r);
    const cy = r + rand() * (H - 2 * r);
    const period = 6 + rand() * 4;
    const phase = rand() * period;
    const px = new Uint8Array(W * H);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let v = 90 + (rand() - 0.5) * 60;
        if ((x - cx) ** 2 + (y - cy) ** 2 < r * r) {
          const t = vertical ? x : y;
          v += Math.sin((2 * Math.PI * (t + phase)) / period) > 0 ? 80 : -40;
        }
        px[y * W + x] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
    const name = `images/img_${String(i).padStart(3, '0')}.png`;
    writeFileSync(join(dir, name), await sharp(px, { raw: { width: W, height: H, channels: 1 } }).png().toBuffer());
    const label = vertical ? 'vertical' : 'horizontal';
    labels.push(label);
    lines.push(`${name},${label}`);
  }
  writeFileSync(join(dir, 'labels.csv'), lines.join('\n') + '\n');
  return labels;
}
