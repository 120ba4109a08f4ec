/**
 * Run medmask's CLI inside the test process (no spawn: the server under test listens in this
 * process too), optionally with MEDMASK_TOKEN set for the call; stdout and stderr are captured.
 */
import { main } from '../../src/cli/main.js';

/** Run `medmask …args` in this process; its exit code, stdout and stderr. */
export async function cliInProcess(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const w1 = process.stdout.write.bind(process.stdout), w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((c: string | Uint8Array) => ((out += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((err += String(c)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

/** Run `medmask …args` with MEDMASK_TOKEN = `token` (unset when undefined); its exit code, stdout and stderr. */
export async function cliWithToken(token: string | undefined, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const prev = process.env.MEDMASK_TOKEN;
  if (token === undefined) delete process.env.MEDMASK_TOKEN;
  else process.env.MEDMASK_TOKEN = token;
  try {
    return await cliInProcess(...args);
  } finally {
    if (prev === undefined) delete process.env.MEDMASK_TOKEN;
    else process.env.MEDMASK_TOKEN = prev;
  }
}
