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
import { registerModelRegistry } from './model-registry.js';
import { registerTrainHead } from './train-head.js';
import { registerTrainMaskHead } from './train-mask-head.js';
import { registerExplain } from './explain.js';
import { registerAtlas } from './atlas.js';
import { registerServe } from './serve.js';
import { registerWorker } from './worker.js';
import { registerUpload } from './upload.js';
import { registerAdmin } from './admin.js';
import { registerDicomweb } from './dicomweb.js';
import { reportError } from './output.js';
import { MEDMASK_VERSION } from '../version.js';

/** commander internals this file overrides (not in its type declarations). */
interface CommanderInternals {
  unknownOption(flag: string): never;
  _checkForMissingMandatoryOptions(): void;
}
const base = Command.prototype as unknown as CommanderInternals;

/**
 * commander's Command with suggestions for every command and subcommand. commander suggests an
 * option within edit distance 3 (`--dat-dir` → `--data-dir`); a shortened option name such as
 * `--data` for `--data-dir` is further away, so an option the typed name is a prefix of (the only
 * one) is suggested first. And where a required option is missing while an unknown one was given
 * (`--modle` for `--model`), the unknown option is reported, with its suggestion. commander has no
 * setting for either, hence these overrides of its internals.
 */
class MedmaskCommand extends Command {
  constructor(name?: string) {
    super(name);
    this.showSuggestionAfterError(true);
    // Every command's --help lists the global options too (--verbose).
    this.configureHelp({ showGlobalOptions: true });
  }

  override createCommand(name?: string): Command {
    return new MedmaskCommand(name);
  }

  /** Long option names visible from this command (its own and its parents'). */
  private longOptions(): string[] {
    const longs: string[] = [];
    for (let c: Command | null = this; c; c = c.parent) longs.push(...c.options.filter((o) => !o.hidden && o.long).map((o) => o.long!));
    return longs;
  }

  unknownOption(flag: string): never {
    if (flag.startsWith('--')) {
      const prefixed = [...new Set(this.longOptions().filter((l) => l !== flag && l.startsWith(flag)))];
      if (prefixed.length === 1) this.error(`error: unknown option '${flag}'\n(Did you mean ${prefixed[0]}?)`, { code: 'commander.unknownOption' });
    }
    return base.unknownOption.call(this, flag);
  }

  _checkForMissingMandatoryOptions(): void {
    const missing = this.options.some((o) => o.mandatory && this.getOptionValue(o.attributeName()) === undefined);
    if (missing) {
      const known = new Set(this.longOptions());
      const end = this.args.indexOf('--');
      const unknown = this.args.slice(0, end < 0 ? undefined : end).find((a) => a.startsWith('--') && !known.has(a.split('=')[0]!));
      if (unknown) this.unknownOption(unknown.split('=')[0]!);
    }
    base._checkForMissingMandatoryOptions.call(this);
  }
}

/** Build the program (exported for tests, which run it in-process). */
export function buildProgram(): Command {
  const program = new MedmaskCommand('medmask')
    .description('medmask: pixel- and voxel-level medical image annotations from cheap labels')
    .version(MEDMASK_VERSION)
    // Global: accepted before or after the command name (`medmask --verbose info x`, `medmask info x --verbose`).
    .option('--verbose', 'on an error, also print what third-party libraries (ITK, GDCM, dcmjs) said and the stack trace (MEDMASK_DEBUG=1 does the same)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInfo(program);
  registerConvert(program);
  registerDataset(program);
  registerModelInspect(program);
  registerModelRegistry(program);
  registerTrainHead(program);
  registerTrainMaskHead(program);
  registerExplain(program);
  registerAtlas(program);
  registerPhantoms(program);
  registerDemo(program);
  registerAnnotate(program);
  registerFitOod(program);
  registerEvaluate(program);
  registerServe(program);
  registerWorker(program);
  registerUpload(program);
  registerAdmin(program);
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
    return reportError(e, undefined, { verbose: program.opts<{ verbose?: boolean }>().verbose === true });
  }
}
