import type { Command } from 'commander';
import { loadConfig } from '../server/config.js';
import { startServe, untilSignal } from '../server/service.js';

interface ServeOpts { config?: string; dataDir?: string; db?: string; blobs?: string; queue?: string; host?: string; port?: string; maxUploadMb?: string; jobConcurrency?: string; handlers?: string; logLevel?: string }

/** Register `medmask serve`. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the API server (SQLite + in-process jobs by default; PostgreSQL and Redis/BullMQ for teams)')
    .option('--config <file>', 'JSON config file (env MEDMASK_CONFIG)')
    .option('--data-dir <dir>', 'data folder: SQLite file, blobs, temporary files (default ./medmask-data)')
    .option('--db <url>', 'postgres://user@host:port/db or an SQLite file (default <data-dir>/medmask.sqlite)')
    .option('--blobs <dir|url>', 'blob store: a folder (default <data-dir>/blobs) or s3://bucket/prefix (AWS_* environment; docs/blob-store.md)')
    .option('--queue <url>', '"inline" (default) or redis://host:6379 to hand jobs to `medmask worker` processes')
    .option('--host <addr>', 'address to listen on (default 127.0.0.1)')
    .option('--port <n>', 'TCP port (default 8080; 0 picks a free one)')
    .option('--max-upload-mb <n>', 'largest upload in MiB, all files of one request together (default 1024)')
    .option('--job-concurrency <n>', 'jobs run at once in this process (default 1)')
    .option('--handlers <modules>', 'extra job handler modules, comma-separated')
    .option('--log-level <level>', 'fatal, error, warn, info (default), debug, trace, silent')
    .addHelpText('after', '\nEvery flag has an environment variable (MEDMASK_PORT, MEDMASK_DB, …) and a config-file key;\nthe first admin\'s password comes from MEDMASK_ADMIN_PASSWORD or is printed once. See docs/server.md.')
    .action(async (o: ServeOpts) => {
      const cfg = loadConfig({ config: o.config, dataDir: o.dataDir, db: o.db, blobs: o.blobs, queue: o.queue, host: o.host, port: o.port, maxUploadMb: o.maxUploadMb, jobConcurrency: o.jobConcurrency, handlers: o.handlers, logLevel: o.logLevel });
      const say = (s: string) => process.stdout.write(`medmask serve: ${s}\n`);
      await untilSignal(await startServe(cfg, say), say);
    });
}
