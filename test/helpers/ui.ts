/**
 * For the review UI's end-to-end tests and benchmark: build the UI, start a seeded server on a
 * free loopback port with a fresh data folder, make phantom cases with known masks and overlays,
 * and launch Debian's Chromium through playwright-core (installed with apt by
 * scripts/system-deps.mjs when missing, as root; otherwise the error names the package).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { abdomenPhantom } from '../../src/core/phantom/abdomen.js';
import { chestPhantom } from '../../src/core/phantom/chest.js';
import { createVolume } from '../../src/core/volume.js';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages } from '../../scripts/system-deps.mjs';
import { startTestServer, type TestServer } from './server.js';
import { seedCases, type SeedCase } from './viewer-seed.js';

const ROOT = new URL('../../', import.meta.url).pathname;

function newest(dir: string): number {
  let t = 0;
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

/** Build web/ into dist/web when the sources (or the core viewer code) are newer than the build. */
export function buildWebUi(): void {
  const index = join(ROOT, 'dist/web/index.html');
  const src = Math.max(newest(join(ROOT, 'web/src')), newest(join(ROOT, 'src/core/viewer')), statSync(join(ROOT, 'web/index.html')).mtimeMs);
  if (existsSync(index) && statSync(index).mtimeMs > src) return;
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', join(ROOT, 'web/vite.config.ts')], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vite build failed:\n${r.stdout}\n${r.stderr}`);
}

/** A seeded server listening on 127.0.0.1. */
export interface UiServer extends TestServer {
  url: string;
  cases: { maskId: string; imageId: string; name: string }[];
}

/** Build the UI, start a server with one user per role (password `pw-<role>-0123456789`), seed cases. */
export async function startUiServer(cases: SeedCase[]): Promise<UiServer> {
  buildWebUi();
  const s = await startTestServer();
  const ids = await seedCases(s.store, s.blobs, cases, { project: 'phantoms', dataset: 'review' });
  const url = await s.app.listen({ host: '127.0.0.1', port: 0 });
  return Object.assign(s, { url, cases: ids.map((c, i) => ({ ...c, name: cases[i]!.name })) });
}

/** Password of the test user of a role. */
export const passwordOf = (role: string) => `pw-${role}-0123456789`;

/**
 * A 2D chest phantom case: the lesion mask as the candidate and a CAM-like heat map (a Gaussian
 * around each lesion).
 */
export function chestCase(seed: number, size: number, priority: number): SeedCase {
  const p = chestPhantom({ seed, size, label: 'nodule', difficulty: 0.1 });
  const heat = new Float32Array(size * size);
  for (const l of p.lesions) {
    const s2 = 2 * (l.radius * 1.5) ** 2;
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) heat[x + size * y] = Math.max(heat[x + size * y]!, Math.exp(-((x - l.center[0]) ** 2 + (y - l.center[1]) ** 2) / s2));
  }
  return { name: `chest-${seed}.png`, volume: createVolume([size, size, 1], 'uint8', { data: p.image }), labels: p.mask, target: 'lesion', priority, heatmap: heat };
}

/**
 * A 3D abdominal CT phantom case: the source's partial labels as the candidate, and as attention
 * the organs the source did not label (where AbdomenAtlas would send an expert).
 */
export function abdomenCase(seed: number, size: number, priority: number): SeedCase {
  const p = abdomenPhantom({ seed, size, source: 'lits' });
  const att = new Uint8Array(p.truth.data.length);
  for (let i = 0; i < att.length; i++) att[i] = p.truth.data[i] !== p.partial.data[i] ? 200 : 0;
  return { name: `abdomen-${seed}-${size}.nii.gz`, volume: p.image, labels: p.partial.data, target: 'organs', priority, attention: att };
}

/** Launch Debian's Chromium headless with software rendering. */
export async function launchChromium(): Promise<Browser> {
  ensureSystemPackages(['chromium']);
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Log in through the login page. */
export async function login(page: Page, url: string, role: string): Promise<void> {
  await page.goto(url);
  await page.fill('#username', role);
  await page.fill('#password', passwordOf(role));
  await page.click('#login');
  await page.waitForSelector('tr.case-row');
}
