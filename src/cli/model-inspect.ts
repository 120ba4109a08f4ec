import type { Command } from 'commander';
import { inspectModel, type ModelInspection } from '../runtime/inspect.js';

function print(r: ModelInspection, out: (l: string) => void): void {
  out(r.path);
  out(`  opset       ${r.opset.join(', ')}`);
  for (const i of r.inputs) out(`  input       ${i.name} [${i.dims.join(', ')}]`);
  for (const o of r.outputs) out(`  output      ${o.name} [${o.dims.join(', ')}]`);
  out('  CAM target candidates (* = chosen; tensors feeding a global pooling, and before their activations):');
  for (const c of r.candidates) {
    const via = c.activations.length ? ` → ${c.activations.join(' → ')}` : '';
    out(`    ${c.tensor === r.target ? '*' : ' '} ${c.tensor}  (${c.producer}${via} → ${c.pooling})${c.head === 'ok' ? '' : `\n        no head: ${c.head}`}`);
  }
  out(`  target      ${r.target}`);
  out('  head:');
  for (const n of r.head) {
    const consts = Object.entries(n.constants).map(([k, d]) => `${k} [${d.join('×')}]`).join(', ');
    out(`    ${n.op.padEnd(20)} ${n.name}${consts ? `  (${consts})` : ''}`);
  }
}

/**
 * Register `medmask model inspect MODEL.onnx [--target NAME] [--json]`.
 * @param program - the root command
 * @example
 * registerModelInspect(program); // in src/cli/main.ts
 */
export function registerModelInspect(program: Command): void {
  const model = program.commands.find((c) => c.name() === 'model') ?? program.command('model').description('inspect and check ONNX models');
  model
    .command('inspect')
    .description('print inputs, outputs, candidate CAM target tensors and the head after the chosen one')
    .argument('<model>', 'an .onnx file, its model.json, or the folder holding them')
    .option('--target <tensor>', 'CAM target tensor (default: the tensor feeding the global pooling, after its activation)')
    .option('--json', 'print JSON instead of text')
    .action(async (path: string, opts: { target?: string; json?: boolean }) => {
      const r = await inspectModel(path, opts.target);
      if (opts.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else print(r, (l) => process.stdout.write(l + '\n'));
    });
}
