// The PACS page of the review UI in Debian's Chromium against a real Orthanc: a reviewer searches
// the archive by patient id, ticks the series and imports it; the page follows the job to "done".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { fixtureFiles, startOrthanc, type OrthancService } from '../helpers/orthanc.js';
import { chestCase, launchChromium, login, startUiServer, type UiServer } from '../helpers/ui.js';

const FIX = new URL('../fixtures/dicom/', import.meta.url).pathname;
const secrets = (JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as { secrets: Record<string, string> }).secrets;

let s: UiServer;
let orthanc: OrthancService;
let browser: Browser;
before(async () => {
  orthanc = await startOrthanc();
  await orthanc.seed(fixtureFiles(join(FIX, 'series_oblique')));
  s = await startUiServer([chestCase(1, 64, 0.5)]);
  const project = (await s.as('admin', { url: '/api/projects' })).json().projects[0].id as string;
  const r = await s.as('admin', { method: 'POST', url: `/api/projects/${project}/dicomweb`, payload: { name: 'orthanc', url: orthanc.dicomweb } });
  assert.equal(r.statusCode, 201, r.body);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await s?.close();
  await orthanc?.stop();
});

test('PACS page: search by patient id, tick, import; the image arrives de-identified; annotators see no PACS link', async () => {
  const page = await browser.newPage();
  await login(page, s.url, 'reviewer');
  await page.click('#nav-pacs');
  await page.fill('#pacs-patientId', secrets.PatientID!);
  await page.click('#pacs-search button[type=submit]');
  const row = page.locator('tbody tr', { hasText: secrets.PatientID! });
  await row.waitFor();
  await row.locator('input[type=checkbox]').check();
  await page.fill('#pacs-dataset', 'ui-import');
  await page.click('#pacs-import');
  await page.locator('#pacs-imports li', { hasText: 'done' }).waitFor({ timeout: 60_000 });
  const ds = await s.store.db.selectFrom('datasets').select('id').where('name', '=', 'ui-import').executeTakeFirstOrThrow();
  const imgs = await s.store.db.selectFrom('images').selectAll().where('dataset_id', '=', ds.id).execute();
  assert.equal(imgs.length, 1);
  assert.deepEqual(JSON.parse(imgs[0]!.shape), [32, 24, 6]);
  assert.ok(!imgs[0]!.meta.includes(secrets.PatientID!));
  const other = await browser.newPage();
  await login(other, s.url, 'annotator');
  assert.equal(await other.locator('#nav-pacs').count(), 0);
});
