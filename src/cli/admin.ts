/**
 * `medmask admin …`: maintenance of a deployment's store. `admin gc` lists (and with `--delete`
 * removes) blobs no row references that are older than a grace period — on a folder or S3 blob
 * store, after checking that the store is the one the database records.
 * @module
 */
import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { loadConfig } from '../server/config.js';
import { collectGarbage } from '../store/blob-gc.js';
import { openStore } from '../store/db.js';
import { openDeploymentBlobs } from '../store/deployment-open.js';

interface GcOpts { config?: string; dataDir?: string; db?: string; blobs?: string; grace?: string; delete?: boolean; json?: boolean }

/**
 * A duration such as "24h", "90m", "7d", "3600s" or a plain number of hours.
 * @example
 * parseDuration('36h', '--grace'); // 129600000
 */
export function parseDuration(s: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(s);
  if (!m) throw new MedmaskError('USAGE', `${what} "${s}" is not a duration`, { hint: 'e.g. 24h, 90m, 7d (a plain number is hours)' });
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[(m[2] ?? 'h').toLowerCase() as 'h'];
  return Number(m[1]) * unit;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const hours = (ms: number) => (ms % 3600_000 === 0 ? `${ms / 3600_000} h` : `${(ms / 60_000).toFixed(0)} min`);

/** Register `medmask admin`. */
export function registerAdmin(program: Command): void {
  const admin = program.command('admin').description('maintenance of a deployment\'s database and blob store');
  admin
    .command('gc')
    .description('find blobs no row references, older than a grace period (dry run by default; --delete removes them)')
    .option('--config <file>', 'JSON config file, as for medmask serve (env MEDMASK_CONFIG)')
    .option('--data-dir <dir>', 'data folder (default ./medmask-data)')
    .option('--db <url>', 'the deployment\'s database (default <data-dir>/medmask.sqlite)')
    .option('--blobs <dir|url>', 'the deployment\'s blob store: folder or s3://bucket/prefix (default <data-dir>/blobs)')
    .option('--grace <duration>', 'keep blobs younger than this, referenced or not (default 24h)', '24h')
    .option('--delete', 'remove the unreferenced blobs (default: only list them)')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nRun it with the same --db and --blobs (or config / MEDMASK_* environment) as medmask serve.\nThe grace period protects uploads and jobs in flight: keep it longer than your longest job.')
    .action(async (o: GcOpts) => {
      const graceMs = parseDuration(o.grace ?? '24h', '--grace');
      if (graceMs < 60_000) throw new MedmaskError('USAGE', `--grace ${o.grace} is shorter than a minute`, { hint: 'blobs are written before the rows that name them: keep at least the length of your longest upload or job (default 24h)' });
      const cfg = loadConfig({ config: o.config, dataDir: o.dataDir, db: o.db, blobs: o.blobs });
      const store = await openStore(cfg.db);
      const blobs = await openDeploymentBlobs(store, cfg.blobs);
      try {
        const r = await collectGarbage(store.db, blobs, { graceMs, delete: !!o.delete, onProgress: (n) => process.stderr.write(`medmask admin gc: ${n} blobs scanned\n`) });
        if (o.json) {
          process.stdout.write(JSON.stringify({ store: blobs.description, ...r }) + '\n');
          return;
        }
        const say = (s: string) => process.stdout.write(s + '\n');
        say(`blob store ${blobs.description}: ${r.stored} blobs (${mib(r.storedBytes)}), ${r.referenced} referenced by the database`);
        say(`${r.unreferenced} unreferenced blob(s) older than ${hours(graceMs)}: ${mib(r.unreferencedBytes)}${r.young ? `; ${r.young} younger unreferenced blob(s) kept` : ''}`);
        for (const s of r.sample.slice(0, 10)) say(`  ${s.hash}  ${s.size} bytes  ${s.modified}`);
        if (r.dryRun) say(r.unreferenced ? 'dry run: nothing removed (run again with --delete to remove them)' : 'nothing to remove');
        else say(`removed ${r.deleted} blob(s), ${mib(r.deletedBytes)}`);
      } finally {
        await store.close();
        (blobs as { close?: () => void }).close?.();
      }
    });
}
