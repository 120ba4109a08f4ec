import type { Command } from 'commander';
import { createDefaultRegistry } from '../io/index.js';
import { fmtVec } from './output.js';

/** Register `medmask convert`. */
export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('convert between formats (DICOM, NIfTI, NRRD, MHA, PNG, TIFF); geometry and voxel type are kept, identifiers removed')
    .argument('<in>', 'input file or DICOM series folder')
    .argument('<out>', 'output file; the format follows its ending (.nii.gz, .nii, .nrrd, .mha, .png, .tif)')
    .option('--series <uid>', 'DICOM: SeriesInstanceUID to read when a folder holds several series')
    .option('--label-map', 'store as a label map (uint8/uint16, NIfTI intent "label")')
    .option('--rescale', 'PNG/TIFF: map the value range onto 0…255 for viewing (loses values)')
    .action(async (input: string, output: string, opts: { series?: string; labelMap?: boolean; rescale?: boolean }) => {
      const reg = createDefaultRegistry();
      const writer = reg.writerFor(output); // fail on a bad output name before reading anything
      const vol = await reg.read(input, opts.series ? { seriesUid: opts.series } : {});
      await writer.write(vol, output, { labelMap: !!opts.labelMap, ...(opts.rescale ? { rescale: true } : {}) });
      process.stdout.write(`wrote ${output} (${vol.shape.join('×')}, spacing ${fmtVec(vol.spacing)} mm, from ${vol.meta.format})\n`);
    });
}
