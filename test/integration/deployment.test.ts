/**
 * One deployment, one configuration: servers started (as `medmask serve` starts them) on one
 * database share the DICOM UID salt the database records — an older version's `<dataDir>/uid-salt`
 * is taken over on first start, so the same DICOM series gets the study UID pydicom computed with
 * that salt (test/fixtures/dicom-seg/expected.json) through every server; a server or worker whose
 * blob store is not the recorded one exits 6 with one line naming both stores.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/server/config.js';
import { startServe, type RunningService } from '../../src/server/service.js';
import { getDeploymentSetting, SETTING_UID_SALT, deploymentUidSalt } from '../../src/store/deployment.js';
import { openStore } from '../../src/store/index.js';
import { ROOT } from '../helpers/cli.js';
import { loadSegExpected } from '../helpers/seg-frames.js';
import { multipartBody } from '../helpers/server.js';

const FIX = join(ROOT, 'test/fixtures/dicom-seg');
const expected = loadSegExpected();
const series = readdirSync(join(FIX, 'series')).sort().map((name) => ({ name, data: readFileSync(join(FIX, 'series', name)) }));
const PASSWORD = 'deployment-test-password';
let dir: string;
let db: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'medmask-deploy-test-'));
  db = join(dir, 'shared.sqlite');
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function serve(dataDir: string): Promise<RunningService> {
  const prev = process.env.MEDMASK_ADMIN_PASSWORD;
  process.env.MEDMASK_ADMIN_PASSWORD = PASSWORD;
  try {
    const cfg = loadConfig({ dataDir, db, blobs: join(dir, 'blobs'), port: '0', logLevel: 'silent' }, {});
    return await startServe({ ...cfg, shutdownGraceMs: 1000 }, () => {});
  } finally {
    if (prev === undefined) delete process.env.MEDMASK_ADMIN_PASSWORD;
    else process.env.MEDMASK_ADMIN_PASSWORD = prev;
  }
}

/** Upload the fixture series through a running server into a new data set; the image's study UID. */
async function uploadStudyUid(svc: RunningService, name: string): Promise<string> {
  const app = svc.app!;
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: PASSWORD } });
  assert.equal(login.statusCode, 200, login.body);
  const cookies = { medmask_session: login.cookies.find((c) => c.name === 'medmask_session')!.value };
  const headers = { 'x-csrf-token': (login.json() as { csrfToken: string }).csrfToken };
  const p = await app.inject({ method: 'POST', url: '/api/projects', cookies, headers, payload: { name } });
  assert.equal(p.statusCode, 201, p.body);
  const d = await app.inject({ method: 'POST', url: `/api/projects/${p.json().id}/datasets`, cookies, headers, payload: { name } });
  const body = multipartBody(series.map((f) => ({ name: f.name, data: f.data })));
  const up = await app.inject({ method: 'POST', url: `/api/datasets/${d.json().id}/images`, cookies, headers: { ...headers, ...body.headers }, payload: body.payload });
  assert.equal(up.statusCode, 201, up.body);
  return (up.json() as { images: { meta: { studyInstanceUid: string } }[] }).images[0]!.meta.studyInstanceUid;
}

test('two servers on one database: the salt lives in the database (an old uid-salt file migrated), the same DICOM gets the same study UID', async () => {
  // Server A has an older version's salt file: it becomes the deployment's salt.
  const a = join(dir, 'server-a');
  mkdirSync(a, { recursive: true });
  writeFileSync(join(a, 'uid-salt'), `${expected.salt}\n`);
  const svcA = await serve(a);
  let uidA: string;
  try {
    uidA = await uploadStudyUid(svcA, 'via-a');
  } finally {
    await svcA.stop();
  }
  assert.equal(uidA, expected.study_instance_uid_remapped, 'the remapped study UID pydicom computed with the file salt');
  // Server B (its own data folder, another salt file of its own) on the same database: the database's salt wins.
  const b = join(dir, 'server-b');
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, 'uid-salt'), 'a-different-local-salt\n');
  const svcB = await serve(b);
  try {
    assert.equal(await uploadStudyUid(svcB, 'via-b'), uidA);
  } finally {
    await svcB.stop();
  }
  const store = await openStore(db);
  try {
    assert.equal(await getDeploymentSetting(store.db, SETTING_UID_SALT), expected.salt);
    // A configured salt that disagrees with the recorded one is refused, not silently used.
    await assert.rejects(deploymentUidSalt(store.db, { configured: 'other' }), (e: unknown) => (e as { code?: string }).code === 'ENVIRONMENT');
    assert.equal(await deploymentUidSalt(store.db, { configured: expected.salt }), expected.salt);
  } finally {
    await store.close();
  }
});

test('a worker or server with another blob store exits 6 with one line naming both stores', async () => {
  // The deployment's store was recorded by the servers above (join(dir, 'blobs')). The CLI runs in
  // this process: main() returns the exit code bin/medmask.js exits with.
  for (const cmd of [['worker', '--queue', 'redis://127.0.0.1:1'], ['serve', '--port', '0']]) {
    let err = '';
    const w = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string | Uint8Array) => ((err += String(c)), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await main([...cmd, '--db', db, '--data-dir', join(dir, `wrong-${cmd[0]}`)]);
    } finally {
      process.stderr.write = w;
    }
    assert.equal(code, 6, `${cmd[0]}: ${err}`);
    const lines = err.split('\n').filter((l) => l.includes('is not this deployment'));
    assert.equal(lines.length, 1, err);
    assert.ok(lines[0]!.includes(join(dir, `wrong-${cmd[0]}`, 'blobs')) && lines[0]!.includes(join(dir, 'blobs') + ' (id'), lines[0]);
  }
});
