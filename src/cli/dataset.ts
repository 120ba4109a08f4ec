import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { readLabelsCsv, readSegmentationDataset, checkLabelMap } from '../io/dataset.js';
import { readVolume } from '../io/index.js';
import { startProgress } from './output.js';

/** Register `medmask dataset check`. */
export function registerDataset(program: Command): void {
  const ds = program.command('dataset').description('check data sets before a run');
  ds.command('check')
    .description('check a labels CSV (every image exists, labels known) or a Decathlon / nnU-Net folder (every file exists, label maps share their image grid and use known labels)')
    .argument('<path>', 'labels CSV, or a folder holding dataset.json')
    .option('--images <dir>', 'CSV: folder the image paths are relative to (default: the CSV folder)')
    .option('--classes <list>', 'CSV: comma-separated allowed labels')
    .option('--headers-only', 'folder: check file lists only, do not open the volumes')
    .action(async (path: string, opts: { images?: string; classes?: string; headersOnly?: boolean }) => {
      const say = (s: string) => process.stdout.write(s + '\n');
      if (existsSync(path) && statSync(path).isDirectory()) {
        const d = await readSegmentationDataset(path);
        const train = d.cases.filter((c) => c.split === 'train');
        say(`${d.name}: ${train.length} training case(s), ${d.cases.length - train.length} test case(s), labels ${Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`);
        if (opts.headersOnly) return;
        const known = Object.keys(d.labels).map(Number);
        const p = startProgress('checking cases', train.length);
        for (const c of train) {
          const img = await readVolume(c.images[0]!);
          if (c.label) checkLabelMap(img, await readVolume(c.label), known.length ? known : undefined, { image: c.images[0]!, label: c.label });
          p.tick();
        }
        p.stop();
        say('ok: every label map shares its image grid and uses known labels');
        return;
      }
      const rows = await readLabelsCsv(path, {
        ...(opts.images ? { imagesDir: opts.images } : {}),
        ...(opts.classes ? { classes: opts.classes.split(',').map((s) => s.trim()) } : {}),
      });
      const counts = new Map<string, number>();
      for (const r of rows) counts.set(r.label, (counts.get(r.label) ?? 0) + 1);
      say(`${path}: ${rows.length} image(s), all present`);
      for (const [label, n] of [...counts].sort()) say(`  ${label}: ${n}`);
    });
}
