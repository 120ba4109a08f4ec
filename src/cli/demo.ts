import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { writeAbdomenDataset, writeChestDataset, removeDataset } from '../pipeline/phantoms.js';
import { describeCounts } from './phantoms.js';
import { startProgress } from './output.js';

/**
 * Register `medmask demo`: the README's first command. Until the annotate pipeline runs on the
 * bundled models, it writes the demo data sets (2D chest radiographs with labels and exact masks,
 * 3D abdominal CT with partial labels) and says where they are and what to try next.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the demo on embedded defaults: writes seeded demo data to ./medmask-demo and prints where the results are')
    .option('--out <dir>', 'output folder', 'medmask-demo')
    .option('--seed <int>', 'seed', '1')
    .option('--fresh', 'delete the output folder first')
    .action(async (o: { out: string; seed: string; fresh?: boolean }) => {
      const out = resolve(o.out);
      const seed = Number(o.seed) || 0;
      if (o.fresh) await removeDataset(out);
      const t0 = Date.now();
      const p2 = startProgress('chest radiographs', 66);
      const chest = await writeChestDataset(join(out, 'chest-2d'), { n: 60, seed, size: 256 }, () => p2.tick());
      p2.stop();
      const p3 = startProgress('abdominal CT volumes', 6);
      const abd = await writeAbdomenDataset(join(out, 'abdomen-3d'), { n: 6, seed, size: 96 }, () => p3.tick());
      p3.stop();
      const say = (s = '') => process.stdout.write(s + '\n');
      say(`medmask demo finished in ${((Date.now() - t0) / 1000).toFixed(1)} s. Results are in ${out}:`);
      say(`  ${join(out, 'chest-2d')}    ${chest.files.length} files — images/, masks/ (exact lesion masks), lungs/, labels.csv (${describeCounts(chest)}), ood/`);
      say(`  ${join(out, 'abdomen-3d')}  ${abd.files.length} files — nnU-Net layout: imagesTr/ (CT in HU), labelsTr/ (partial labels per source), truthTr/, dataset.json (sources: ${describeCounts(abd)})`);
      say();
      say('Try next:');
      say(`  npx medmask info ${join(o.out, 'abdomen-3d', 'imagesTr', 'case_0000_0000.nii.gz')}`);
      say(`  npx medmask dataset check ${join(o.out, 'abdomen-3d')}`);
      say(`  npx medmask dataset check ${join(o.out, 'chest-2d', 'labels.csv')}`);
    });
}
