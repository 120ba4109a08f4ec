/**
 * The `medmask` command line. Each command lives in its own file and only parses options, calls
 * library functions and prints; errors go through {@link reportError}.
 * @module
 */
import { Command, CommanderError } from 'commander';
import { registerConvert } from './convert.js';
import { registerDataset } from './dataset.js';
import { registerDemo } from './demo.js';
import { registerAnnotate } from './annotate.js';
import { registerEvaluate } from './evaluate.js';
import { registerFitOod } from './fit-ood.js';
import { registerPhantoms } from './phantoms.js';
import { registerInfo } from './info.js';
import { registerModelInspect } from './model-inspect.js';
import { registerTrainHead } from './train-head.js';
import { registerExplain } from './explain.js';
import { registerAtlas } from './atlas.js';
import { registerServe } from './serve.js';
import { registerWorker } from './worker.js';
import { registerDicomweb } from './dicomweb.js';
import { reportError } from './output.js';
import { MEDMASK_VERSION } from '../version.js';


/** Build the program (exported for tests, which run it in-process). */
export function buildProgram(): Command {
  const program = new Command('medmask')
    .description('medmask: pixel- and voxel-level medical image annotations from cheap labels')
    .version(MEDMASK_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInfo(program);
  registerConvert(program);
  registerDataset(program);
  registerModelInspect(program);
  registerTrainHead(program);
  registerExplain(program);
  registerAtlas(program);
  registerPhantoms(program);
  registerDemo(program);
  registerAnnotate(program);
  registerFitOod(program);
  registerEvaluate(program);
  registerServe(program);
  registerWorker(program);
  registerDicomweb(program);
  for (const c of program.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  return program;
}

/**
 * Run the CLI with the given arguments (without `node` and the script name).
 * @returns the exit code
 */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    return reportError(e);
  }
}
