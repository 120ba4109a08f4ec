/**
 * The queue page: review cases sorted by priority (most urgent first), with filters (data set,
 * status, model decision, organ / target, claimed), counts per status, who is on which case, and
 * cases with edits kept in this browser marked.
 */
import { describeError, type Api, type QueueFilter, type QueueItem } from './api.js';
import { listPending } from './pending.js';
import { ago, h, mount } from './ui.js';

const PAGE = 50;

/** Show the queue; `open(maskId)` opens a case. */
export async function showQueue(root: HTMLElement, api: Api, filter: QueueFilter, open: (maskId: string) => void, onFilter: (f: QueueFilter) => void): Promise<() => void> {
  const f: QueueFilter = { status: 'open', claimed: 'any', offset: 0, ...filter, limit: PAGE };
  const counts = h('div', { class: 'counts' });
  const body = h('tbody', {}, h('tr', {}, h('td', { colspan: 9, class: 'muted' }, h('span', { class: 'spinner small' }), ' Loading the queue…')));
  const pager = h('div', { class: 'pager' });
  const ds = h('select', { id: 'f-dataset', 'aria-label': 'data set' }, h('option', { value: '' }, 'all data sets')) as HTMLSelectElement;
  const status = h('select', { id: 'f-status', 'aria-label': 'status' }, ['open', 'accepted', 'rejected', 'all'].map((s) => h('option', { value: s }, s))) as HTMLSelectElement;
  const decision = h('select', { id: 'f-decision', 'aria-label': 'decision' }, h('option', { value: '' }, 'any decision'), ['review', 'ood', 'accept'].map((s) => h('option', { value: s }, s))) as HTMLSelectElement;
  const target = h('input', { id: 'f-target', placeholder: 'organ / target', 'aria-label': 'organ or target', list: 'targets', size: 14 }) as HTMLInputElement;
  const targets = h('datalist', { id: 'targets' });
  const claimed = h('select', { id: 'f-claimed', 'aria-label': 'claimed' }, [['any', 'anyone'], ['none', 'unclaimed'], ['me', 'mine']].map(([v, t]) => h('option', { value: v! }, t!))) as HTMLSelectElement;
  status.value = f.status ?? 'open';
  decision.value = f.decision ?? '';
  target.value = f.target ?? '';
  claimed.value = f.claimed ?? 'any';
  let alive = true;

  const apply = () => {
    Object.assign(f, { dataset: ds.value || undefined, status: status.value as QueueFilter['status'], decision: decision.value || undefined, target: target.value.trim() || undefined, claimed: claimed.value as QueueFilter['claimed'], offset: 0 });
    onFilter({ ...f });
    void load();
  };
  for (const c of [ds, status, decision, claimed]) c.addEventListener('change', apply);
  target.addEventListener('change', apply);

  mount(root, h('div', { class: 'queue-page' },
    h('header', { class: 'qbar' }, h('h1', {}, 'Review queue'), counts, h('span', { class: 'grow' }), h('button', { onclick: () => void load(), title: 'Reload' }, '↻ Refresh')),
    h('div', { class: 'filters' }, ds, status, decision, target, targets, claimed),
    h('table', { class: 'queue' }, h('thead', {}, h('tr', {}, ['Priority', 'Image', 'Data set', 'Target', 'Model', 'Status', 'Version', 'Who is on it', 'Updated'].map((t) => h('th', {}, t)))), body),
    pager,
  ));

  void api.datasets().then((list) => {
    for (const d of list) ds.append(h('option', { value: d.id }, `${d.project} / ${d.name}`));
    ds.value = f.dataset ?? '';
  }, () => undefined);

  async function load(): Promise<void> {
    body.classList.add('stale');
    try {
      const base = { dataset: f.dataset, decision: f.decision, target: f.target, claimed: f.claimed };
      const [page, open, accepted, rejected, pending] = await Promise.all([
        api.queue(f),
        api.queue({ ...base, status: 'open', limit: 1 }),
        api.queue({ ...base, status: 'accepted', limit: 1 }),
        api.queue({ ...base, status: 'rejected', limit: 1 }),
        listPending().catch(() => []),
      ]);
      if (!alive) return;
      const kept = new Set(pending.map((p) => p.maskId));
      mount(counts, h('span', { class: 'count', id: 'count-open' }, `${open.total} open`), h('span', { class: 'count' }, `${accepted.total} accepted`), h('span', { class: 'count' }, `${rejected.total} rejected`), h('span', { class: 'count total' }, `${page.total} shown by the filter`));
      for (const t of new Set(page.items.map((i) => i.target))) if (![...targets.children].some((o) => (o as HTMLOptionElement).value === t)) targets.append(h('option', { value: t }));
      if (!page.items.length) mount(body, h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No cases match these filters.')));
      else mount(body, page.items.map((it) => rowOf(it, kept.has(it.maskId))));
      const from = (f.offset ?? 0) + 1, to = (f.offset ?? 0) + page.items.length;
      mount(pager,
        h('button', { disabled: (f.offset ?? 0) === 0, onclick: () => ((f.offset = Math.max(0, (f.offset ?? 0) - PAGE)), void load()) }, '← Previous'),
        h('span', { class: 'muted' }, page.total ? `${from}–${to} of ${page.total}` : ''),
        h('button', { disabled: to >= page.total, onclick: () => ((f.offset = (f.offset ?? 0) + PAGE), void load()) }, 'Next →'),
      );
    } catch (e) {
      if (alive) mount(body, h('tr', {}, h('td', { colspan: 9, class: 'error-text' }, describeError(e))));
    } finally {
      body.classList.remove('stale');
    }
  }

  function rowOf(it: QueueItem, hasKept: boolean): HTMLTableRowElement {
    const tr = h('tr', { class: 'case-row', 'data-mask': it.maskId, tabindex: 0, onclick: () => open(it.maskId), onkeydown: ((e: KeyboardEvent) => e.key === 'Enter' && open(it.maskId)) as EventListener },
      h('td', {}, h('div', { class: 'prio' }, h('div', { class: 'prio-bar', style: `width: ${Math.round(Math.max(0, Math.min(1, it.priority)) * 100)}%` }), h('span', {}, it.priority.toFixed(3)))),
      h('td', {}, it.imageName, hasKept ? h('span', { class: 'badge warn', title: 'unsaved edits are kept in this browser' }, 'unsaved edits') : null),
      h('td', {}, it.datasetName),
      h('td', {}, it.target),
      h('td', {}, it.decision ?? ''),
      h('td', {}, h('span', { class: `badge status-${it.status}` }, it.status)),
      h('td', {}, `v${it.currentVersion}`),
      h('td', {}, it.claimedBy ? h('span', { class: it.claimedBy === api.user?.username ? 'mine' : '' }, `${it.claimedBy} ${ago(it.claimedAt)}`) : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'muted' }, ago(it.updatedAt)),
    );
    return tr;
  }

  await load();
  const refresh = setInterval(() => document.visibilityState === 'visible' && void load(), 30_000);
  return () => {
    alive = false;
    clearInterval(refresh);
  };
}
