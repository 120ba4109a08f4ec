// Archive credentials at rest: AES-256-GCM with the deployment's key (src/store/secret-box.ts).
// Checked against node:crypto directly (an independent decryption of what is stored), and the
// failure modes: another key, a tampered value, a worker without the key, a clear row from before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMedmaskError } from '../../src/core/errors.js';
import { createSource, sealClearSources, sourceEndpoint } from '../../src/store/dicomweb.js';
import { openStore } from '../../src/store/index.js';
import { SecretBox, deploymentSecretBox, parseSecretKey } from '../../src/store/secret-box.js';

const KEY_A = 'a1'.repeat(32);
const KEY_B = Buffer.alloc(32, 7).toString('base64');
const envError = (re: RegExp) => (e: unknown) => isMedmaskError(e) && e.code === 'ENVIRONMENT' && re.test(e.message);

test('sealed values are AES-256-GCM under the key (decrypted here with node:crypto), fresh IV each time; another key or a changed byte is an error, never text', () => {
  const box = new SecretBox(parseSecretKey(KEY_A, 'k'));
  const a = box.seal('pacs-secret');
  const b = box.seal('pacs-secret');
  assert.notEqual(a, b, 'a fresh IV per value');
  const [iv, tag, ct] = a.slice('enc:v1:'.length).split(':').map((x) => Buffer.from(x, 'base64'));
  assert.equal(iv!.length, 12);
  const d = createDecipheriv('aes-256-gcm', Buffer.from(KEY_A, 'hex'), iv!);
  d.setAuthTag(tag!);
  assert.equal(Buffer.concat([d.update(ct!), d.final()]).toString('utf8'), 'pacs-secret');
  assert.equal(box.open(a, 'x'), 'pacs-secret');
  assert.throws(() => new SecretBox(parseSecretKey(KEY_B, 'k')).open(a, 'DICOMweb source "pacs"'), envError(/DICOMweb source "pacs" cannot be decrypted/));
  // Flip a bit of the ciphertext's first byte (a base64 character near the end may hold only padding bits).
  const ctFlipped = Buffer.from(ct!);
  ctFlipped[0]! ^= 1;
  const flipped = `enc:v1:${iv!.toString('base64')}:${tag!.toString('base64')}:${ctFlipped.toString('base64')}`;
  assert.notEqual(flipped, a);
  assert.throws(() => box.open(flipped, 'x'), envError(/cannot be decrypted/));
  assert.equal(box.checkValue(), createHmac('sha256', Buffer.from(KEY_A, 'hex')).update('medmask secret key check v1').digest('hex').slice(0, 32));
  assert.throws(() => parseSecretKey('short', 'MEDMASK_SECRET_KEY'), envError(/MEDMASK_SECRET_KEY is not a 256-bit key/));
});

test('the deployment key: made into a 0600 file for a single server, checked against the database; clear rows from before are sealed and still work', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-secrets-'));
  try {
    const store = await openStore(join(dir, 'db.sqlite'));
    try {
      const server = join(dir, 'server');
      const worker = join(dir, 'worker');
      for (const d of [server, worker]) mkdirSync(d);
      // A row written before encryption at rest (clear password).
      await store.db.insertInto('projects').values({ id: 'p', name: 'p', created_at: 'now', created_by: null }).execute();
      await store.db.insertInto('dicomweb_sources').values({ id: 'old', project_id: 'p', name: 'old', url: 'http://127.0.0.1:1/dicom-web', auth: JSON.stringify({ type: 'basic', username: 'u', password: 'clear-secret-1' }), tls: '{}', timeout_ms: 30000, auto_push: 0, created_at: 'now', created_by: null }).execute();

      // A worker started before any server makes no key (and records none).
      assert.equal((await deploymentSecretBox(store.db, { dataDir: worker })).usable, false);
      const box = await deploymentSecretBox(store.db, { dataDir: server, create: true });
      const file = join(server, 'secret-key');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal((await deploymentSecretBox(store.db, { dataDir: server, create: true })).checkValue(), box.checkValue(), 'the same key on the next start');
      // The same key configured explicitly agrees; another key is refused at start; a process
      // without one (a worker, a second server) starts, and refuses to use credentials, saying why.
      assert.equal((await deploymentSecretBox(store.db, { configured: readFileSync(file, 'utf8') })).checkValue(), box.checkValue());
      await assert.rejects(deploymentSecretBox(store.db, { configured: KEY_B }), envError(/MEDMASK_SECRET_KEY is not the one this deployment's database was set up with/));
      const keyless = await deploymentSecretBox(store.db, { dataDir: worker, configured: '', create: true });
      assert.equal(keyless.usable, false);

      assert.equal(await sealClearSources(store.db, box), 1);
      assert.equal(await sealClearSources(store.db, box), 0, 'idempotent');
      await createSource(store.db, { projectId: 'p', name: 'new', endpoint: { url: 'http://127.0.0.1:1/dicom-web', auth: { type: 'bearer', token: 'tok-secret-2' } }, autoPush: false, createdBy: null }, box);
      const rows = await store.db.selectFrom('dicomweb_sources').selectAll().orderBy('name').execute();
      assert.ok(!JSON.stringify(rows).includes('clear-secret-1') && !JSON.stringify(rows).includes('tok-secret-2'), JSON.stringify(rows));
      assert.deepEqual(sourceEndpoint(rows[1]!, box).auth, { type: 'basic', username: 'u', password: 'clear-secret-1' });
      assert.deepEqual(sourceEndpoint(rows[0]!, box).auth, { type: 'bearer', token: 'tok-secret-2' });
      assert.throws(() => sourceEndpoint(rows[0]!, new SecretBox(Buffer.alloc(32, 1))), envError(/DICOMweb source "new" cannot be decrypted/));
      assert.throws(() => sourceEndpoint(rows[0]!, keyless), envError(/DICOMweb source "new" cannot be used: this process has no secret key .*encrypted with one/));
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
