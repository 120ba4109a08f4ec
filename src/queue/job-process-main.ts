/**
 * The server's job process (started by job-process.ts with `child_process.fork`): opens the
 * deployment's database and blob store, builds the same job handlers as the server, and runs each
 * queue message it is sent with the ordinary runner (runner.ts) — claims, progress, results and
 * errors go to the database as with `medmask worker`. Tasks of a job that fans out are queued by
 * asking the server (its in-process queue). Exits when the server closes the channel or dies.
 * @module
 */
import { openBlobStore } from '../store/blob-store-open.js';
import { openStore, type Store } from '../store/db.js';
import { SecretBox } from '../store/secret-box.js';
import { deploymentHandlers } from './handler-modules.js';
import { toWire, type FromChild, type JobProcessOptions, type ToChild } from './job-process.js';
import type { FlowSpec } from './queue.js';
import { createJobProcessor } from './runner.js';
import type { Consumer } from './queue.js';

const send = (m: FromChild) => {
  if (process.connected) process.send!(m);
};

let consumer: Consumer | undefined;
let store: Store | undefined;
const running = new Map<number, { abort: AbortController; done: Promise<void> }>();
const flows = new Map<number, { resolve(): void; reject(e: Error): void }>();
let nextFlow = 1;

async function init(o: JobProcessOptions): Promise<void> {
  // The server migrated the database already; this process only reads and writes rows.
  store = await openStore(o.db, { migrate: false });
  const blobs = await openBlobStore(o.blobs);
  const secrets = new SecretBox(o.secretKey ? Buffer.from(o.secretKey, 'hex') : null, 'the server has no secret key (docs/pacs.md)');
  const handlers = await deploymentHandlers(o.handlerModules ?? [], { uidSalt: o.uidSalt, secrets });
  const queue = {
    addFlow: (flow: FlowSpec) =>
      new Promise<void>((resolve, reject) => {
        const rid = nextFlow++;
        flows.set(rid, { resolve, reject });
        send({ t: 'flow', rid, flow });
      }),
  };
  consumer = createJobProcessor({
    store,
    blobs,
    handlers,
    queue,
    workDir: o.workDir,
    ...(o.heartbeatMs ? { heartbeatMs: o.heartbeatMs } : {}),
    log: (event) => send({ t: 'log', event }),
    say: (line) => send({ t: 'say', line }),
  });
}

function run(id: number, m: Extract<ToChild, { t: 'run' }>): void {
  const abort = new AbortController();
  const done = consumer!(m.msg, { attempt: m.attempt, maxAttempts: m.maxAttempts, signal: abort.signal }).then(
    () => send({ t: 'done', id }),
    (e: unknown) => send({ t: 'failed', id, error: toWire(e) }),
  ).finally(() => running.delete(id));
  running.set(id, { abort, done });
}

async function close(): Promise<void> {
  for (const r of running.values()) r.abort.abort(new Error('server closing'));
  await Promise.allSettled([...running.values()].map((r) => r.done));
  await store?.close().catch(() => {});
  process.exit(0);
}

process.on('message', (m: ToChild) => {
  switch (m.t) {
    case 'init':
      init(m.options).then(() => send({ t: 'ready', pid: process.pid }), (e: unknown) => {
        send({ t: 'fatal', error: toWire(e) });
        setTimeout(() => process.exit(6), 100);
      });
      break;
    case 'run':
      run(m.id, m);
      break;
    case 'abort':
      running.get(m.id)?.abort.abort(new Error('server closing'));
      break;
    case 'flow-done': {
      const f = flows.get(m.rid);
      flows.delete(m.rid);
      if (m.error) f?.reject(new Error(m.error));
      else f?.resolve();
      break;
    }
    case 'close':
      void close();
      break;
  }
});
// The server is gone (killed, crashed): nothing would collect results; the next server re-runs the work.
process.on('disconnect', () => process.exit(1));
send({ t: 'hello' });
