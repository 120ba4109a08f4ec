import type { Command } from 'commander';
import { loadConfig } from '../server/config.js';
import { startWorker, untilSignal } from '../server/service.js';

interface WorkerOpts { config?: string; dataDir?: string; db?: string; blobs?: string; queue?: string; concurrency?: string; lockMs?: string; handlers?: string }

/** Register `medmask worker`. */
export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('run jobs from a Redis (BullMQ) queue, sharing the database and blob folder with `medmask serve`')
    .option('--config <file>', 'JSON config file (env MEDMASK_CONFIG)')
    .option('--data-dir <dir>', 'local scratch folder (default ./medmask-data)')
    .option('--db <url>', 'the server\'s database: postgres://… (or the same SQLite file on this machine)')
    .option('--blobs <dir|url>', 'the server\'s blob store: shared folder or s3://bucket/prefix')
    .option('--queue <url>', 'redis://host:6379 (required)')
    .option('--concurrency <n>', 'jobs at once (default 1)')
    .option('--lock-ms <n>', 'job lock in ms: a dead worker\'s job is taken over after this (default 30000)')
    .option('--handlers <modules>', 'extra job handler modules, comma-separated')
    .addHelpText('after', '\nExample: medmask worker --db postgres://app@db/medmask --blobs /shared/blobs --queue redis://queue:6379')
    .action(async (o: WorkerOpts) => {
      const cfg = loadConfig({ config: o.config, dataDir: o.dataDir, db: o.db, blobs: o.blobs, queue: o.queue, jobConcurrency: o.concurrency, lockMs: o.lockMs, handlers: o.handlers });
      const say = (s: string) => process.stdout.write(`medmask worker: ${s}\n`);
      await untilSignal(await startWorker(cfg, say), say);
    });
}
