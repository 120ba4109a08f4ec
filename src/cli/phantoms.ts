import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { SOURCE_NAMES, type SourceName } from '../core/phantom/abdomen.js';
import { writeAbdomenDataset, writeChestDataset, type WrittenDataset } from '../pipeline/phantoms.js';
import { numberOption, startProgress } from './output.js';

const isInt = (lo: number, hi: number) => (v: number) => Number.isInteger(v) && v >= lo && v <= hi;

/** One line per count, e.g. "healthy 80, nodule 41, …". */
export function describeCounts(w: WrittenDataset): string {
  return Object.entries(w.counts).filter(([, c]) => c > 0).map(([k, c]) => `${k} ${c}`).join(', ');
}

interface PhantomOpts { n?: string; seed?: string; out: string; size?: string; ood?: string; nearOod?: string; difficulty?: string; sources?: string; realistic?: boolean; json?: boolean }

/** Register `medmask phantoms 2d|3d`. */
export function registerPhantoms(program: Command): void {
  program
    .command('phantoms')
    .description('write seeded synthetic data with exact ground truth: 2d chest radiographs with lesions, or 3d abdominal CT with 9 organs and partial labels')
    .argument('<kind>', '2d or 3d')
    .requiredOption('--out <dir>', 'output folder')
    .option('--n <count>', 'number of images (2d) or volumes (3d)', undefined)
    .option('--seed <int>', 'seed: the same seed and options give identical files', '0')
    .option('--size <px>', '2d: image width/height (default 256); 3d: in-plane voxels (default 96)')
    .option('--ood <fraction>', '2d: out-of-distribution images to add, as a fraction of n (default 0.1)')
    .option('--near-ood <fraction>', '2d: near-out-of-distribution chest images (other scanner, child, effusion, devices) to add under near-ood/, as a fraction of n (default 0)')
    .option('--difficulty <0..1>', '2d: 0 large high-contrast lesions … 1 small faint ones (default 0.3)')
    .option('--sources <list>', `3d: comma-separated sources to draw from (${SOURCE_NAMES.join(', ')}; default all)`)
    .option('--realistic', '3d: per-source scanner profiles (contrast phase, kernel, noise, field of view) and findings (tumours, cysts, variants, metal, truncation) at each source\'s rates')
    .option('--json', 'print a JSON summary on stdout')
    .addHelpText('after', '\nLayouts: docs/phantoms.md. Examples:\n  medmask phantoms 2d --n 200 --seed 1 --out data/chest\n  medmask phantoms 2d --n 200 --seed 1 --near-ood 0.2 --out data/chest\n  medmask phantoms 3d --n 20 --seed 1 --out data/abdomen --sources btcv,lits,kits\n  medmask phantoms 3d --n 20 --seed 1 --realistic --out data/abdomen-real')
    .action(async (kind: string, o: PhantomOpts) => {
      const seed = numberOption('--seed', o.seed, 0, isInt(-(2 ** 31), 2 ** 32), 'an integer');
      let w: WrittenDataset;
      if (kind === '2d') {
        const n = numberOption('--n', o.n, 100, isInt(1, 1_000_000), 'a whole number from 1 to 1000000');
        const size = numberOption('--size', o.size, 256, isInt(32, 4096), 'a whole number of pixels from 32 to 4096');
        const ood = numberOption('--ood', o.ood, 0.1, (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1');
        const nearOod = numberOption('--near-ood', o.nearOod, 0, (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1');
        const difficulty = numberOption('--difficulty', o.difficulty, 0.3, (v) => v >= 0 && v <= 1, 'a number from 0 to 1');
        const p = startProgress('phantoms 2d', n + Math.round(n * ood) + Math.round(n * nearOod), { quiet: !!o.json });
        w = await writeChestDataset(o.out, { n, seed, size, oodFraction: ood, nearOodFraction: nearOod, difficulty }, () => p.tick());
        p.stop();
      } else if (kind === '3d') {
        const n = numberOption('--n', o.n, 10, isInt(1, 100_000), 'a whole number from 1 to 100000');
        const size = numberOption('--size', o.size, 96, isInt(32, 1024), 'a whole number of voxels from 32 to 1024');
        let sources: SourceName[] | undefined;
        if (o.sources) {
          sources = o.sources.split(',').map((s) => s.trim()) as SourceName[];
          const bad = sources.filter((s) => !SOURCE_NAMES.includes(s));
          if (bad.length) throw new MedmaskError('USAGE', `unknown source(s) ${bad.join(', ')}`, { hint: `use some of ${SOURCE_NAMES.join(', ')}` });
        }
        const p = startProgress('phantoms 3d', n, { quiet: !!o.json });
        w = await writeAbdomenDataset(o.out, { n, seed, size, ...(sources ? { sources } : {}), ...(o.realistic ? { realistic: true } : {}) }, () => p.tick());
        p.stop();
      } else {
        throw new MedmaskError('USAGE', `phantom kind "${kind}" is not 2d or 3d`, { hint: 'medmask phantoms 2d --out DIR, or medmask phantoms 3d --out DIR' });
      }
      if (o.json) process.stdout.write(JSON.stringify({ kind, dir: w.dir, files: w.files.length, counts: w.counts }) + '\n');
      else process.stdout.write(`wrote ${w.files.length} files to ${w.dir} (${describeCounts(w)})\n`);
    });
}
