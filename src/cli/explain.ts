/**
 * `medmask explain`: class activation maps and Monte Carlo Dropout uncertainty for images, with one
 * or more ONNX classifiers. Thin: parses options, calls `runExplain`, prints.
 * @module
 */
import { Option, type Command } from 'commander';
import { CAM_METHODS, type CamMethod } from '../core/explain/cam.js';
import { MedmaskError } from '../core/errors.js';
import { runExplain, type ExplainRunSummary } from '../pipeline/explain.js';
import { startProgress } from './output.js';

interface ExplainCliOptions {
  model: string[];
  image: string;
  out: string;
  class?: string;
  method?: CamMethod;
  mc?: string | true;
  mcMode: 'head' | 'full';
  dropout?: string;
  seed: string;
  pixelStd: boolean;
  device: 'cpu' | 'cuda';
  threads?: string;
  batch: string;
  overlay: boolean;
  json?: boolean;
}

function int(name: string, v: string, lo: number, hi: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new MedmaskError('USAGE', `${name} ${JSON.stringify(v)} is not a whole number from ${lo} to ${hi}`);
  return n;
}

function print(s: ExplainRunSummary, out: (l: string) => void): void {
  if (s.results.length === 1) {
    const r = s.results[0]!;
    out(r.image);
    for (const [m, v] of Object.entries(r.models)) {
      out(`  ${m.padEnd(16)} ${v.predicted} (p = ${v.probability.toFixed(3)})${v.mutualInformation !== undefined ? `  MI = ${v.mutualInformation.toFixed(4)} nats` : ''}`);
    }
  }
  out(`explained ${s.explained} of ${s.images} image${s.images === 1 ? '' : 's'} with ${s.models.length} model${s.models.length === 1 ? '' : 's'} in ${s.seconds.toFixed(1)} s (${s.imagesPerSecond.toFixed(1)} images/s) → ${s.out}`);
  if (s.failed.length) out(`${s.failed.length} image${s.failed.length === 1 ? '' : 's'} failed; see ${s.out}/summary.json`);
}

/**
 * Register `medmask explain`.
 * @param program - the root command
 * @example
 * registerExplain(program); // in src/cli/main.ts
 */
export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('class activation maps (XGrad-CAM by default) and Monte Carlo Dropout uncertainty for images, with one or more ONNX classifiers')
    .requiredOption('--model <path>', 'model: .onnx, its model.json, or the folder; repeat for several models', (v: string, prev: string[] = []) => [...prev, v])
    .requiredOption('--image <path>', 'an image file or a folder of images (searched recursively)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--class <which>', 'predicted (default), all, or class names / indices, comma-separated')
    .addOption(new Option('--method <name>', 'CAM method (default: the manifest\'s cam.method, else xgradcam)').choices([...CAM_METHODS]))
    .option('--mc [samples]', 'Monte Carlo Dropout with this many samples (without a number: the manifest\'s mc.samples, else 30; 0: no MC)')
    .addOption(new Option('--mc-mode <mode>', 'head: T samples of the head from one backbone pass; full: T passes with the graph\'s Dropout nodes on').choices(['head', 'full']).default('head'))
    .option('--dropout <rate>', 'head-MC dropout rate (default: the manifest\'s mc.dropout)')
    .option('--seed <int>', 'Monte Carlo seed: the same seed gives the same result', '0')
    .option('--no-pixel-std', 'MC statistics only: skip the per-pixel std of the T maps')
    .addOption(new Option('--device <device>', 'where inference runs').choices(['cpu', 'cuda']).default('cpu'))
    .option('--threads <n>', 'onnxruntime threads per model (default: all cores)')
    .option('--batch <n>', 'images per forward pass where the model allows it', '8')
    .option('--no-overlay', 'do not write the overlay PNGs')
    .option('--json', 'print the run summary as JSON on stdout')
    .addHelpText(
      'after',
      '\nWrites per image and model, under OUT/<image>/: MODEL.json (probabilities, uncertainty), and per class\n' +
        'MODEL.CLASS.png (overlay), MODEL.CLASS.npy (map at image resolution), .act.npy / .raw.npy (activation\n' +
        'resolution, normalised / raw), .std.npy (MC per-pixel std); and OUT/summary.json.\n' +
        'Examples:\n  medmask explain --model models/demo/resnet --image chest.png --out out\n' +
        '  medmask explain --model a.onnx --model b.onnx --image data/images --class all --mc 30 --out out --json',
    )
    .action(async (o: ExplainCliOptions) => {
      const mc = o.mc === undefined ? undefined : o.mc === true ? true : int('--mc', o.mc, 0, 10_000) || undefined; // 0: no MC
      const dropout = o.dropout === undefined ? undefined : Number(o.dropout);
      if (dropout !== undefined && !(dropout >= 0 && dropout < 1)) throw new MedmaskError('USAGE', `--dropout ${JSON.stringify(o.dropout)} is not a rate in [0, 1)`);
      let progress: ReturnType<typeof startProgress> | undefined;
      const summary = await runExplain({
        models: o.model,
        images: o.image,
        out: o.out,
        ...(o.class !== undefined ? { classes: o.class } : {}),
        ...(o.method ? { method: o.method } : {}),
        ...(mc !== undefined ? { mc } : {}),
        mcMode: o.mcMode,
        ...(dropout !== undefined ? { dropout } : {}),
        seed: int('--seed', o.seed, -(2 ** 31), 2 ** 32),
        noPixelStd: !o.pixelStd,
        device: o.device,
        ...(o.threads !== undefined ? { threads: int('--threads', o.threads, 1, 1024) } : {}),
        batch: int('--batch', o.batch, 1, 4096),
        overlay: o.overlay,
        onProgress: (done, total, ips) => {
          if (total < 2) return;
          progress ??= startProgress('explain', total, { quiet: !!o.json });
          progress.tick(1, `${ips.toFixed(1)} images/s`);
          if (done === total) progress.stop();
        },
        onNote: (n) => process.stderr.write(`medmask: note: ${n}\n`),
      });
      if (o.json) process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
      else print(summary, (l) => process.stdout.write(l + '\n'));
      if (summary.failed.length) {
        throw new MedmaskError('CORRUPT_FILE', `${summary.failed.length} of ${summary.images} images could not be explained (first: ${summary.failed[0]!.image}: ${summary.failed[0]!.error})`, {
          hint: `the others were written; the list is in ${o.out}/summary.json`,
        });
      }
    });
}
