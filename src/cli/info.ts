import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { labelsPresent, orientationCode, valueRange, voxelTypeOf, type Volume } from '../core/volume.js';
import { createDefaultRegistry } from '../io/index.js';
import { fmtVec } from './output.js';

/** Summary of one volume, as `medmask info` prints it (and `--json` emits). */
export interface VolumeSummary {
  path: string;
  format: string;
  shape: number[];
  components: number;
  voxelType: string;
  spacing: number[];
  origin: number[];
  orientation: string;
  direction: number[];
  range: [number, number];
  labels?: number[] | undefined;
  meta: Record<string, unknown>;
}

/** Summarise a volume: shape, spacing, orientation code, voxel type, value range, labels present. */
export function summarize(path: string, v: Volume): VolumeSummary {
  const integral = !(v.data instanceof Float32Array || v.data instanceof Float64Array);
  const { format = 'unknown', source: _source, ...meta } = v.meta;
  return {
    path,
    format: String(format),
    shape: [...v.shape],
    components: v.components,
    voxelType: voxelTypeOf(v.data),
    spacing: [...v.spacing],
    origin: [...v.origin],
    orientation: orientationCode(v.direction),
    direction: [...v.direction],
    range: valueRange(v.data),
    labels: integral && v.components === 1 ? labelsPresent(v.data, 64) : undefined,
    meta,
  };
}

function printSummary(s: VolumeSummary, out: (l: string) => void): void {
  out(`${s.path}`);
  out(`  format       ${s.format}`);
  out(`  shape        ${s.shape.join(' × ')}${s.components > 1 ? ` × ${s.components} components` : ''}`);
  out(`  voxel type   ${s.voxelType}`);
  out(`  spacing      ${fmtVec(s.spacing)} mm`);
  out(`  origin       (${s.origin.map((x) => Number(x.toFixed(3))).join(', ')}) mm, LPS`);
  out(`  orientation  ${s.orientation}  direction [${s.direction.map((d) => Number(d.toFixed(5))).join(', ')}]`);
  out(`  value range  ${s.range[0]} … ${s.range[1]}${s.meta.unit ? ' ' + String(s.meta.unit) : ''}`);
  if (s.labels) out(`  labels       ${s.labels.length <= 20 ? s.labels.join(', ') : `${s.labels.length} distinct values`}`);
  for (const k of ['modality', 'seriesDescription', 'description', 'spacingSource']) {
    if (s.meta[k] !== undefined && s.meta[k] !== '') out(`  ${(k === 'seriesDescription' ? 'series' : k).padEnd(12)} ${String(s.meta[k])}`);
  }
}

/** Register `medmask info`. */
export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('print shape, spacing, orientation, voxel type, value range and labels of images, volumes, DICOM series or a folder of them')
    .argument('<paths...>', 'files or folders (a DICOM series folder is read as one volume)')
    .option('--series <uid>', 'DICOM: SeriesInstanceUID to read when a folder holds several series')
    .option('--json', 'print JSON instead of text')
    .action(async (paths: string[], opts: { series?: string; json?: boolean }) => {
      const reg = createDefaultRegistry();
      const out: VolumeSummary[] = [];
      const expand = async (p: string): Promise<string[]> => {
        if (!existsSync(p) || !statSync(p).isDirectory()) return [p];
        // A folder one reader accepts whole (a DICOM series) is one volume; otherwise list its files.
        try {
          await reg.readerFor(p);
          return [p];
        } catch {
          return readdirSync(p).sort().map((f) => join(p, f)).filter((f) => statSync(f).isFile());
        }
      };
      const files = (await Promise.all(paths.map(expand))).flat();
      for (const f of files) {
        const v = await reg.read(f, opts.series ? { seriesUid: opts.series } : {});
        const s = summarize(f, v);
        if (opts.json) out.push(s);
        else printSummary(s, (l) => process.stdout.write(l + '\n'));
      }
      if (opts.json) process.stdout.write(JSON.stringify(out.length === 1 ? out[0] : out, null, 2) + '\n');
    });
}
