/**
 * Command-line papercuts: every command suggests the nearest option for an unknown one, also when
 * the typed name is a shortened option (`serve --data` → `--data-dir`) and when a required option
 * is missing because of the typo (`explain --modle`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';

/** Run the CLI in this process; capture stderr. */
async function cliErr(...args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const e = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), err };
  } finally {
    process.stderr.write = e;
  }
}

test('unknown options get the nearest option as a suggestion, in every command and subcommand', async () => {
  for (const [args, flag, suggestion] of [
    [['serve', '--data', 'x'], '--data', '--data-dir'],
    [['serve', '--dat-dir', 'x'], '--dat-dir', '--data-dir'],
    [['explain', '--modle', 'm.onnx', '--image', 'x.png'], '--modle', '--model'],
    [['atlas', 'predict', '--dat', 'x'], '--dat', '--data'],
    [['model', 'inspect', 'm.onnx', '--targ', 't'], '--targ', '--target'],
    [['phantoms', '2d', '--sed', '3'], '--sed', '--seed'],
  ] as const) {
    const r = await cliErr(...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, new RegExp(`unknown option '${flag}'\\n\\(Did you mean ${suggestion}\\?\\)`), `${args.join(' ')}: ${r.err}`);
  }
});

test('an unknown option with no near match, and a missing required option without a typo, stay as commander reports them', async () => {
  const far = await cliErr('serve', '--zzzzzzzz');
  assert.match(far.err, /unknown option '--zzzzzzzz'/);
  assert.doesNotMatch(far.err, /Did you mean/);
  const missing = await cliErr('explain', '--image', 'x.png');
  assert.match(missing.err, /required option '--model <path>' not specified/);
});
