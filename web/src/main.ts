/**
 * The review UI: login → queue → viewer, routed by the URL hash (#/queue, #/case/<maskId>) so the
 * server serves one page. A banner shows while the server is unreachable.
 */
import './styles.css';
import { Api, describeError, type QueueFilter } from './api.js';
import { showLogin } from './login.js';
import { safeNextPath } from './next-path.js';
import { showQueue } from './queue.js';
import { h, mount } from './ui.js';
import { openViewer } from './viewer/page.js';
import { warmUpDrawing } from './viewer/slice-view.js';
import { showPacs } from './pacs.js';

const api = new Api();
const app = document.getElementById('app')!;
const banner = document.getElementById('banner')!;
let cleanup: (() => void) | null = null;
// The queue's filter is remembered in this browser; the data set defaults to the one last worked
// on (so "next case" stays in it) until "all data sets" is chosen on purpose.
let filter: QueueFilter = JSON.parse(localStorage.getItem('medmask-filter') ?? '{}') as QueueFilter;
let allDatasets = localStorage.getItem('medmask-all-datasets') === '1';
const saveFilter = () => {
  localStorage.setItem('medmask-filter', JSON.stringify(filter));
  localStorage.setItem('medmask-all-datasets', allDatasets ? '1' : '0');
};
/** A case was opened: its data set becomes the queue's default. */
function openedIn(datasetId: string): void {
  if (allDatasets || filter.dataset === datasetId) return;
  filter = { ...filter, dataset: datasetId, offset: 0 };
  saveFilter();
}

api.onReachability((up) => {
  banner.hidden = up;
  banner.textContent = up ? '' : 'The server cannot be reached. Your unsaved edits are kept in this browser and will be saved when it is back.';
});
window.addEventListener('offline', () => ((banner.hidden = false), (banner.textContent = 'This computer is offline. Your unsaved edits are kept in this browser.')));
window.addEventListener('online', () => api.reachable && (banner.hidden = true));
api.onUnauthenticated = () => void route(true);

function shell(content: HTMLElement): HTMLElement {
  const page = h('div', { class: 'page' });
  mount(app, h('nav', { class: 'topnav' }, h('a', { href: '#/queue', class: 'brand' }, 'medmask'), api.user?.role === 'admin' || api.user?.role === 'reviewer' ? h('a', { href: '#/pacs', id: 'nav-pacs' }, 'PACS') : null, h('span', { class: 'grow' }), h('span', { class: 'muted', id: 'whoami' }, `${api.user?.username} (${api.user?.role})`), h('button', { onclick: () => void logout() }, 'Log out')), page);
  page.append(content);
  return page;
}

async function logout(): Promise<void> {
  cleanup?.();
  cleanup = null;
  await api.logout();
  location.hash = '#/login';
}

async function nextCase(current: string): Promise<boolean> {
  const q = await api.queue({ ...filter, status: 'open', limit: 50, offset: 0 });
  const me = api.user?.username;
  const next = q.items.find((i) => i.maskId !== current && (!i.claimedBy || i.claimedBy === me));
  if (!next) return false;
  location.hash = `#/case/${encodeURIComponent(next.maskId)}`;
  return true;
}

let routing = Promise.resolve();
function route(sessionLost = false): Promise<void> {
  routing = routing.then(() => doRoute(sessionLost)).catch((e) => mount(app, h('div', { class: 'error-box' }, h('p', {}, describeError(e)), h('button', { onclick: () => location.reload() }, 'Reload'))));
  return routing;
}

async function doRoute(sessionLost: boolean): Promise<void> {
  cleanup?.();
  cleanup = null;
  if (sessionLost || !api.user) {
    const me = sessionLost ? null : await api.me().catch((e) => (mount(app, h('div', { class: 'error-box' }, h('p', {}, describeError(e)), h('button', { onclick: () => location.reload() }, 'Try again'))), undefined));
    if (me === undefined) return;
    if (!me) {
      const wanted = location.hash && location.hash !== '#/login' ? location.hash : '#/queue';
      await showLogin(app, api, sessionLost ? 'Your session ended; log in again (unsaved edits are kept).' : undefined);
      // sent here from a page of this site (e.g. /docs) before logging in: back to it
      const next = safeNextPath(new URLSearchParams(location.search).get('next'), location.origin);
      if (next) return void location.assign(next);
      if (location.hash === wanted) return doRoute(false);
      location.hash = wanted;
      return;
    }
  }
  const hash = location.hash || '#/queue';
  const m = /^#\/case\/(.+)$/.exec(hash);
  if (m) {
    const page = shell(h('div'));
    cleanup = await openViewer(page, api, decodeURIComponent(m[1]!), { toQueue: () => (location.hash = '#/queue'), next: nextCase, opened: openedIn });
    return;
  }
  if (hash === '#/pacs') {
    cleanup = await showPacs(shell(h('div')), api);
    return;
  }
  if (hash !== '#/queue') {
    location.hash = '#/queue';
    return;
  }
  const page = shell(h('div'));
  cleanup = await showQueue(page, api, filter, (id) => (location.hash = `#/case/${encodeURIComponent(id)}`), (f) => {
    filter = { dataset: f.dataset, status: f.status, decision: f.decision, target: f.target, claimed: f.claimed };
    allDatasets = !f.dataset;
    saveFilter();
  });
  // the first case opened from here draws with compiled code (see warmUpDrawing)
  if ('requestIdleCallback' in window) requestIdleCallback(() => warmUpDrawing(), { timeout: 2000 });
}

window.addEventListener('hashchange', () => void route());
void route();
