/**
 * The PACS page (#/pacs): pick a project's DICOMweb archive, search its series (QIDO-RS through
 * the server; needs the `phi` permission), tick series, import them into a data set and watch the
 * import jobs. docs/pacs.md describes the API it calls.
 */
import { describeError, type Api } from './api.js';
import { h, mount, toast } from './ui.js';
import type { SeriesRecord as SeriesHit } from '../../src/dicomweb/records.js';

interface Source {
  id: string;
  name: string;
  url: string;
  autoPush: boolean;
}
interface ImportState {
  id: string;
  status: string;
  progress: number;
  message: string | null;
  error: string | null;
}

const FIELDS: [string, string, string][] = [
  ['patientId', 'Patient ID', ''],
  ['studyDate', 'Study date', 'YYYYMMDD-YYYYMMDD'],
  ['modality', 'Modality', 'CT'],
  ['accessionNumber', 'Accession number', ''],
  ['studyDescription', 'Study description', 'wildcards * ?'],
  ['seriesDescription', 'Series description', 'wildcards * ?'],
];

/**
 * Show the PACS page in `page`.
 * @returns a cleanup function (stops polling)
 */
export async function showPacs(page: HTMLElement, api: Api): Promise<() => void> {
  let timer: ReturnType<typeof setInterval> | undefined;
  const projects = (await api.request<{ projects: { id: string; name: string }[] }>('GET', '/api/projects')).projects;
  const sources: (Source & { project: string })[] = [];
  for (const p of projects) {
    const r = await api.request<{ sources: Source[] }>('GET', `/api/projects/${encodeURIComponent(p.id)}/dicomweb`);
    for (const s of r.sources) sources.push({ ...s, project: p.name });
  }
  if (!sources.length) {
    mount(page, h('h2', {}, 'PACS'), h('p', { class: 'muted' }, 'No DICOMweb archive is registered yet. An admin registers one with POST /api/projects/:id/dicomweb (see docs/pacs.md).'));
    return () => {};
  }
  const select = h('select', { id: 'pacs-source' }, ...sources.map((s) => h('option', { value: s.id }, `${s.project} — ${s.name} (${s.url})`)));
  const inputs = Object.fromEntries(FIELDS.map(([k, , ph]) => [k, h('input', { id: `pacs-${k}`, placeholder: ph })])) as Record<string, HTMLInputElement>;
  const results = h('tbody', {});
  const dataset = h('input', { id: 'pacs-dataset', value: 'from-pacs' });
  const status = h('ul', { id: 'pacs-imports' });
  let hits: SeriesHit[] = [];

  async function search(): Promise<void> {
    const q = new URLSearchParams();
    for (const [k] of FIELDS) if (inputs[k]!.value.trim()) q.set(k, inputs[k]!.value.trim());
    try {
      hits = (await api.request<{ series: SeriesHit[] }>('GET', `/api/dicomweb/${encodeURIComponent(select.value)}/series?${q}`)).series;
    } catch (e) {
      toast(describeError(e), 'error');
      return;
    }
    mount(
      results,
      ...hits.map((s, i) => h('tr', {}, h('td', {}, h('input', { type: 'checkbox', 'data-i': String(i) })), h('td', {}, s.patientId), h('td', {}, s.patientName), h('td', {}, s.studyDate), h('td', {}, s.accessionNumber), h('td', {}, s.modality), h('td', {}, s.studyDescription), h('td', {}, s.seriesDescription), h('td', {}, String(s.instances ?? '?')))),
    );
    if (!hits.length) mount(results, h('tr', {}, h('td', { colspan: '9', class: 'muted' }, 'No series found.')));
  }

  async function importChecked(): Promise<void> {
    const picked = [...results.querySelectorAll<HTMLInputElement>('input[type=checkbox]:checked')].map((c) => hits[Number(c.dataset.i)]!);
    if (!picked.length) return toast('Tick the series to import first.', 'info');
    try {
      const r = await api.request<{ imports: { id: string }[] }>('POST', `/api/dicomweb/${encodeURIComponent(select.value)}/imports`, { dataset: dataset.value.trim() || 'from-pacs', series: picked.map((s) => ({ studyInstanceUid: s.studyInstanceUid, seriesInstanceUid: s.seriesInstanceUid })) });
      toast(`${r.imports.length} import job(s) started`, 'ok');
      watch(r.imports.map((i) => i.id));
    } catch (e) {
      toast(describeError(e), 'error');
    }
  }

  function watch(ids: string[]): void {
    const rows = new Map(ids.map((id) => [id, h('li', {}, `import ${id.slice(0, 8)}: queued`)]));
    status.append(...rows.values());
    const tick = async () => {
      for (const [id, li] of rows) {
        const s = await api.request<ImportState>('GET', `/api/dicomweb/imports/${encodeURIComponent(id)}`).catch(() => undefined);
        if (!s) continue;
        li.textContent = `import ${id.slice(0, 8)}: ${s.status} ${Math.round(s.progress * 100)} %${s.message ? ` — ${s.message}` : ''}${s.error ? ` — ${s.error}` : ''}`;
        if (s.status === 'done' || s.status === 'failed') rows.delete(id);
      }
      if (!rows.size && timer) clearInterval(timer);
    };
    if (timer) clearInterval(timer);
    timer = setInterval(() => void tick(), 1000);
  }

  mount(
    page,
    h('h2', {}, 'PACS'),
    h('p', { class: 'muted' }, 'Search results name patients: they are shown to roles with the phi permission only, and every search is audited. Imported images are de-identified.'),
    h('label', {}, 'Archive ', select),
    h('form', { id: 'pacs-search', onsubmit: (e: Event) => (e.preventDefault(), void search()) }, ...FIELDS.map(([k, label]) => h('label', {}, `${label} `, inputs[k]!)), h('button', { type: 'submit' }, 'Search')),
    h('table', { class: 'queue' }, h('thead', {}, h('tr', {}, ...['', 'Patient ID', 'Name', 'Date', 'Accession', 'Mod.', 'Study', 'Series', 'Inst.'].map((t) => h('th', {}, t)))), results),
    h('p', {}, h('label', {}, 'Into data set ', dataset), ' ', h('button', { id: 'pacs-import', onclick: () => void importChecked() }, 'Import ticked series')),
    status,
  );
  return () => timer && clearInterval(timer);
}
