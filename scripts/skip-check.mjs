// Finds skipped tests in the TAP output of node's test runner and keeps only those whose reason
// names a missing system capability that a CI machine may lack (a GPU / CUDA). Used by
// scripts/test.mjs, which writes a TAP copy of the run beside the spec reporter on the terminal.
// Hand-written: node's test runner has no option that fails a run on skips.

/** Reasons a test may be skipped for: the machine has no GPU (and node's own --test-name-pattern filter). */
export const ALLOWED_SKIP = /\b(GPU|CUDA)\b|^test name does not match pattern$/i;

/**
 * Skipped tests in TAP text (`ok N - name # SKIP reason`, at any nesting depth), and the summary's
 * `# skipped N` count(s).
 * @param {string} tap - TAP output of `node --test --test-reporter=tap`
 * @returns {{ skipped: { name: string, reason: string }[], summarySkipped: number }}
 */
export function findSkips(tap) {
  const skipped = [];
  let summarySkipped = 0;
  for (const line of tap.split('\n')) {
    const m = /^\s*ok \d+ - (.*?) # SKIP(?:\s+(.*))?$/.exec(line);
    if (m) skipped.push({ name: m[1].replace(/\\#/g, '#').replace(/\\\\/g, '\\'), reason: (m[2] ?? '').trim() });
    const s = /^# skipped (\d+)\s*$/.exec(line);
    if (s) summarySkipped += Number(s[1]);
  }
  return { skipped, summarySkipped };
}

/**
 * Problems with the skips of a run: every skip whose reason does not name a GPU, and a summary
 * count that the parsed lines do not account for (output this check cannot read is a failure, not
 * a pass).
 * @param {string} tap - TAP output
 * @returns {string[]} one line per problem; empty when the run is clean
 */
export function skipProblems(tap) {
  const { skipped, summarySkipped } = findSkips(tap);
  const out = skipped
    .filter((s) => !ALLOWED_SKIP.test(s.reason))
    .map((s) => `skipped without a missing GPU as the reason: "${s.name}"${s.reason ? ` (${s.reason})` : ' (no reason given)'}`);
  if (summarySkipped !== skipped.length) out.push(`the runner reports ${summarySkipped} skipped test(s), but ${skipped.length} skip line(s) were found in its TAP output`);
  return out;
}
