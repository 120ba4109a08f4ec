/**
 * The viewer page: one review case. Image + candidate mask + heat map on a Canvas 2D slice view
 * (axial / coronal / sagittal for volumes, CT window presets), flagged regions with jump-to, the
 * editing tools (brush and eraser along the mouse path, flood fill in a slice or through a slice
 * range, hole filling, label picker, undo / redo), saves of compact per-slice diffs carrying the
 * version being edited (a 409 opens the comparison dialog), accept / reject with a reason,
 * save-and-next, time on case, unsaved edits kept in the browser and retried, and the case's
 * drafts (refused stale saves, model candidates kept after a person's work) loadable as edits.
 */
import {
  ActiveTimer, CT_PRESETS, ChangeBuilder, MaskEditor, changeRectInView, flipRows, labelLut, legendFor, pixelAspect, presetWindow, viewDims, voxelToView, windowLevel, zoomAbout,
  type LegendEntry, type Rect, type ViewAxis,
} from '../../../src/core/viewer/index.js';
import { ApiError, describeError, type Api, type Axis, type CaseInfo, type ConflictDetails, type Draft, type OverlayKind, type Region } from '../api.js';
import { deletePending, getPending, putPending } from '../pending.js';
import { ago, dialog, duration, h, mount, toast } from '../ui.js';
import { perf } from '../perf.js';
import { SliceCache, type CachedSlice } from './slice-cache.js';
import { SliceView, type ViewSettings } from './slice-view.js';
import { installShortcuts, key, showHelp, type Shortcut } from './shortcuts.js';
import { gpuInfo } from './gpu.js';

/** What the page needs from the app. */
export interface ViewerNav {
  toQueue(): void;
  /** Open the next case after this one (resolves false when the queue is empty). */
  next(currentMaskId: string): Promise<boolean>;
}

type Tool = 'brush' | 'eraser' | 'fill' | 'fill-range' | 'holes';

const TOOLS: { id: Tool; label: string; key: string; title: string }[] = [
  { id: 'brush', label: 'Brush', key: 'B', title: 'paint the selected label along the mouse path' },
  { id: 'eraser', label: 'Eraser', key: 'E', title: 'erase (set to background) along the mouse path' },
  { id: 'fill', label: 'Fill', key: 'F', title: 'flood-fill the clicked region in this slice' },
  { id: 'fill-range', label: 'Fill ±N', key: 'G', title: 'flood-fill the clicked region through a range of slices' },
  { id: 'holes', label: 'Holes', key: 'H', title: 'fill the holes of the selected label in this slice' },
];

/**
 * Open a case in `root`.
 * @returns a function that closes the page (releases the claim, removes listeners)
 */
export async function openViewer(root: HTMLElement, api: Api, maskId: string, nav: ViewerNav): Promise<() => void> {
  const openedAt = performance.now();
  perf.mark('open', openedAt);
  const stage = h('div', { class: 'stage' });
  const loading = h('div', { class: 'loading' }, h('div', { class: 'spinner' }), h('span', {}, 'Loading case…'));
  stage.append(loading);
  mount(root, h('div', { class: 'viewer' }, h('header', { class: 'vbar' }, h('button', { onclick: () => nav.toQueue() }, '← Queue'), h('span', { class: 'muted' }, 'Opening case…')), stage));

  let info: CaseInfo;
  // the case and its middle axial slice together (the server streams that slice out of the file
  // while it reads the case); a failure of the slice alone is retried through the cache below
  const early = api.slice(maskId, 'z', null, null, ['image', 'labels']);
  early.catch(() => undefined);
  try {
    info = await api.caseInfo(maskId);
  } catch (e) {
    mount(stage, h('div', { class: 'error-box' }, h('p', {}, describeError(e)), h('button', { onclick: () => nav.toQueue() }, 'Back to the queue')));
    return () => undefined;
  }
  const canEdit = api.can('edit');
  const canReview = api.can('review');
  const shape = info.shape;
  const is3d = shape[2] > 1;
  const overlayKinds = (Object.keys(info.overlays) as OverlayKind[]).filter((k) => info.overlays[k]);
  const cache = new SliceCache(api, maskId, ['image', 'labels', ...overlayKinds]);
  const editor = new MaskEditor(shape);
  const timer = new ActiveTimer(() => performance.now());
  let baseVersion = info.currentVersion;
  let legend: LegendEntry[] = legendFor(info.target, info.labels);
  let lut = labelLut(legend);
  let label = legend.find((e) => info.labels.includes(e.value))?.value ?? legend[0]!.value;
  let tool: Tool = 'brush';
  let brushSize = Math.max(2, Math.round(Math.min(shape[0], shape[1]) / 48));
  let fillRange = 5;
  let keepOthers = false;
  let axis: ViewAxis = 'z';
  const index: Record<ViewAxis, number> = { x: Math.floor(shape[0] / 2), y: Math.floor(shape[1] / 2), z: Math.floor(shape[2] / 2) };
  let regions: Region[] = [];
  let drafts: Draft[] = [];
  let loadingDraft = false;
  let regionCursor = -1;
  let displayed: CachedSlice | null = null;
  let displayLabels: Uint8Array | null = null;
  let closed = false;
  let saving = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let retryDelay = 2000;
  let persistTimer: ReturnType<typeof setTimeout> | undefined;
  let claimed = false;

  const settings: ViewSettings = {
    window: info.window,
    showLabels: true,
    labelOpacity: 0.45,
    outline: false,
    heatKind: overlayKinds.includes('attention') ? 'attention' : (overlayKinds[0] ?? null),
    showHeat: overlayKinds.length > 0,
    heatOpacity: 0.4,
    zoom: 1,
    pan: [0, 0],
  };
  const view = new SliceView(settings, () => lut);

  // ── layout ──
  const el = {
    title: h('span', { class: 'case-title' }),
    version: h('span', { class: 'badge' }),
    status: h('span', { class: 'badge' }),
    sliceLabel: h('span', { class: 'slice-label' }),
    slider: h('input', { type: 'range', min: 0, max: 0, value: 0, class: 'slice-slider', 'aria-label': 'slice' }) as HTMLInputElement,
    cursor: h('div', { class: 'brush-cursor', hidden: true }),
    marker: h('div', { class: 'marker', hidden: true }),
    sliceLoading: h('div', { class: 'slice-loading', hidden: true }, h('div', { class: 'spinner small' })),
    edits: h('div', { class: 'edits-status' }),
    time: h('span', { class: 'muted' }),
    regions: h('ol', { class: 'regions' }),
    legend: h('div', { class: 'legend' }),
    versions: h('ol', { class: 'versions' }),
    drafts: h('ol', { class: 'versions drafts', id: 'drafts' }),
    draftsSection: h('section', { class: 'drafts-section', hidden: true }),
    undo: h('button', { title: 'Undo (Ctrl+Z)', onclick: () => undo() }, '↶ Undo') as HTMLButtonElement,
    redo: h('button', { title: 'Redo (Ctrl+Shift+Z)', onclick: () => redo() }, '↷ Redo') as HTMLButtonElement,
    save: h('button', { class: 'primary', id: 'save', title: 'Save (Ctrl+S)', onclick: () => void save() }, 'Save') as HTMLButtonElement,
    saveNext: h('button', { id: 'save-next', title: 'Save and open the next case (Ctrl+Enter)', onclick: () => void saveAndNext() }, 'Save & next') as HTMLButtonElement,
    accept: h('button', { class: 'ok', id: 'accept', title: 'Accept this mask (Shift+A)', onclick: () => void review('accept') }, 'Accept') as HTMLButtonElement,
    reject: h('button', { class: 'danger', id: 'reject', title: 'Reject with a reason (Shift+R)', onclick: () => void review('reject') }, 'Reject…') as HTMLButtonElement,
    toolButtons: new Map<Tool, HTMLButtonElement>(),
    axisButtons: new Map<ViewAxis, HTMLButtonElement>(),
    windowSel: h('select', { 'aria-label': 'window', title: 'Window preset (W cycles)' }) as HTMLSelectElement,
    size: h('input', { type: 'range', min: 1, max: 64, value: brushSize, 'aria-label': 'brush size', title: 'Brush size ([ and ])' }) as HTMLInputElement,
    sizeLabel: h('span', { class: 'muted' }),
    range: h('input', { type: 'number', min: 0, max: 200, value: fillRange, class: 'narrow', 'aria-label': 'fill range ± slices', title: 'slices each side for Fill ±N' }) as HTMLInputElement,
  };

  for (const t of TOOLS) {
    const b = h('button', { class: 'tool', 'data-tool': t.id, title: `${t.title} (${t.key})`, onclick: () => setTool(t.id) }, t.label) as HTMLButtonElement;
    if (t.id === 'fill-range' && !is3d) continue;
    el.toolButtons.set(t.id, b);
  }
  for (const [a, name] of [['z', 'Axial'], ['y', 'Coronal'], ['x', 'Sagittal']] as [ViewAxis, string][]) {
    el.axisButtons.set(a, h('button', { class: 'axis', 'data-axis': a, title: `${name} (${name[0]})`, onclick: () => setAxis(a) }, name) as HTMLButtonElement);
  }
  if (info.modality === 'ct') for (const p of CT_PRESETS) el.windowSel.append(h('option', { value: p.id }, `${p.label} W${p.width} L${p.level}`));
  el.windowSel.append(h('option', { value: 'auto' }, `Auto ${Math.round(info.window[0])}…${Math.round(info.window[1])}`));
  el.windowSel.value = info.modality === 'ct' ? 'abdomen' : 'auto';
  el.windowSel.addEventListener('change', () => setWindow(el.windowSel.value));
  el.size.addEventListener('input', () => setBrush(Number(el.size.value)));
  el.range.addEventListener('change', () => (fillRange = Math.max(0, Math.min(200, Number(el.range.value) || 0))));

  const overlayControls = h('div', { class: 'overlay-controls' },
    row('Labels', check(settings.showLabels, (v) => ((settings.showLabels = v), redraw()), 'toggle-labels'), slider(settings.labelOpacity, (v) => ((settings.labelOpacity = v), redraw()), 'label opacity'), h('label', { class: 'small' }, check(settings.outline, (v) => ((settings.outline = v), redraw()), 'toggle-outline'), 'outline')),
    overlayKinds.length
      ? row('Heat map', check(settings.showHeat, (v) => ((settings.showHeat = v), redraw()), 'toggle-heat'), slider(settings.heatOpacity, (v) => ((settings.heatOpacity = v), redraw()), 'heat opacity'), (() => {
          const s = h('select', { 'aria-label': 'heat map kind' }, overlayKinds.map((k) => h('option', { value: k }, k))) as HTMLSelectElement;
          s.value = settings.heatKind ?? '';
          s.addEventListener('change', () => ((settings.heatKind = s.value as OverlayKind), redraw()));
          return s;
        })())
      : h('p', { class: 'muted' }, 'No heat map for this case.'),
  );

  const toolbar = h('header', { class: 'vbar' },
    h('button', { onclick: () => void leave(), title: 'Back to the queue (Esc)' }, '← Queue'),
    el.title, el.version, el.status,
    h('span', { class: 'sep' }),
    is3d ? h('span', { class: 'group' }, [...el.axisButtons.values()]) : null,
    is3d && gpuInfo().offer3d ? h('button', { class: 'btn-3d', title: `3D / multiplanar view with NiiVue (WebGL2: ${gpuInfo().renderer})`, onclick: () => void import('./view3d.js').then((m) => m.open3d({ imageId: info.imageId, maskId, version: baseVersion, window: settings.window, legend, unsaved: editor.edits.size })) }, '3D') : null,
    h('label', { class: 'group' }, 'Window ', el.windowSel),
    h('span', { class: 'sep' }),
    canEdit ? h('span', { class: 'group tools' }, [...el.toolButtons.values()], h('label', { class: 'small' }, 'size ', el.size, el.sizeLabel), is3d ? h('label', { class: 'small' }, '±', el.range) : null, h('label', { class: 'small', title: 'do not paint over other labels' }, check(keepOthers, (v) => (keepOthers = v), 'keep-others'), 'keep others'), el.undo, el.redo) : h('span', { class: 'readonly' }, `Read-only (${api.user?.role ?? 'no'} role)`),
    h('span', { class: 'grow' }),
    canEdit ? [el.save, el.saveNext] : null,
    canReview ? [el.accept, el.reject] : null,
    h('button', { onclick: () => showHelp(shortcuts), title: 'Keyboard shortcuts (?)' }, '?'),
  );
  const canvasBox = h('div', { class: 'canvas-box' }, view.canvas, el.cursor, el.marker, el.sliceLoading);
  const side = h('aside', { class: 'side' },
    h('section', {}, h('h3', {}, 'Labels'), el.legend),
    h('section', {}, h('h3', {}, 'Overlays'), overlayControls),
    h('section', {}, h('h3', {}, 'Flagged regions'), el.regions),
    h('section', {}, h('h3', {}, 'Unsaved edits'), el.edits, el.time),
    h('section', {}, h('h3', {}, 'Versions'), el.versions),
    el.draftsSection,
  );
  mount(el.draftsSection, h('h3', {}, 'Drafts'), el.drafts);
  mount(root, h('div', { class: 'viewer' }, toolbar, h('div', { class: 'viewer-main' }, h('div', { class: 'stage' }, canvasBox, h('div', { class: 'slice-bar' }, is3d ? el.slider : null, el.sliceLabel), loading), side)));

  function row(name: string, ...c: (Node | null)[]) {
    return h('div', { class: 'row' }, h('span', { class: 'row-name' }, name), ...c);
  }
  function check(v: boolean, on: (v: boolean) => void, id: string): HTMLInputElement {
    const c = h('input', { type: 'checkbox', id, 'aria-label': id.replace('toggle-', '') }) as HTMLInputElement;
    c.checked = v;
    c.addEventListener('change', () => on(c.checked));
    return c;
  }
  function slider(v: number, on: (v: number) => void, label: string): HTMLInputElement {
    const s = h('input', { type: 'range', min: 0, max: 100, value: Math.round(v * 100), 'aria-label': label, title: label }) as HTMLInputElement;
    s.addEventListener('input', () => on(Number(s.value) / 100));
    return s;
  }

  // ── state → DOM ──
  function renderHeader(): void {
    el.title.textContent = `${info.imageName} · ${info.target}`;
    el.title.title = `priority ${info.priority.toFixed(3)}${info.decision ? ` · model decision ${info.decision}` : ''}`;
    el.version.textContent = `v${baseVersion}${baseVersion !== info.currentVersion ? ` (server v${info.currentVersion})` : ''}`;
    el.status.textContent = info.status;
    el.status.className = `badge status-${info.status}`;
    for (const [t, b] of el.toolButtons) b.classList.toggle('active', t === tool);
    for (const [a, b] of el.axisButtons) b.classList.toggle('active', a === axis);
    el.sizeLabel.textContent = `${brushSize}px`;
  }
  function renderLegend(): void {
    mount(el.legend, legend.map((e, i) => {
      const b = h('button', { class: `legend-item ${e.value === label ? 'active' : ''}`, 'data-label': e.value, title: `select ${e.name}${i < 9 ? ` (${i + 1})` : ''}`, onclick: () => setLabel(e.value) },
        h('span', { class: 'swatch', style: `background: rgb(${e.color.join(',')})` }), `${i < 9 ? `${i + 1} ` : ''}${e.name}`, info.labels.includes(e.value) ? null : h('span', { class: 'muted' }, ' (none)'));
      if (!canEdit) b.setAttribute('disabled', '');
      return b;
    }));
  }
  function renderEdits(): void {
    const n = editor.edits.size;
    el.edits.textContent = n ? `${n.toLocaleString()} voxels changed in ${editor.edits.editedPlanes().length} slice(s); ${editor.history.depth} undo step(s)` : 'none';
    el.edits.classList.toggle('dirty', n > 0);
    el.undo.disabled = !editor.history.canUndo;
    el.redo.disabled = !editor.history.canRedo;
    el.save.disabled = saving || n === 0;
    el.save.textContent = saving ? 'Saving…' : n ? 'Save' : 'Saved';
  }
  function renderVersions(): void {
    mount(el.versions, info.versions.map((v) => h('li', { class: v.version === baseVersion ? 'current' : '' }, `v${v.version} · ${v.origin}${v.author ? ` · ${v.author}` : ''} · ${ago(v.createdAt)}`)));
  }
  function renderDrafts(): void {
    el.draftsSection.hidden = drafts.length === 0;
    // newest first, like the versions
    mount(el.drafts, [...drafts].reverse().map((d) => {
      const who = d.author ?? 'model job';
      const on = `on v${d.baseVersion}${d.currentVersionAtSave !== d.baseVersion ? ` (v${d.currentVersionAtSave} was current)` : ''}`;
      return h('li', { class: 'draft', 'data-draft': d.id },
        h('div', {}, `${who} · ${ago(d.createdAt)} · ${on}`),
        d.note ? h('div', { class: 'draft-note' }, d.note) : null,
        canEdit ? h('button', { class: 'load-draft', 'data-draft': d.id, title: `Replace the labels in the editor with this draft, as unsaved edits on v${baseVersion}`, 'aria-label': `Load into editor: draft by ${who} ${on}`, disabled: loadingDraft, onclick: () => void loadDraft(d) }, 'Load into editor') : null);
    }));
  }
  async function refreshDrafts(): Promise<void> {
    try {
      drafts = await api.drafts(maskId);
    } catch {
      return; // the list is an extra: the case works without it
    }
    if (!closed) renderDrafts();
  }
  function renderRegions(): void {
    if (!regions.length) return mount(el.regions, h('li', { class: 'muted' }, overlayKinds.length ? 'No flagged regions above the threshold.' : 'No attention map for this case.'));
    mount(el.regions, regions.map((r, i) => h('li', {}, h('button', { class: `region ${i === regionCursor ? 'active' : ''}`, 'data-rank': r.rank, onclick: () => jumpToRegion(i) }, `#${r.rank} · ${r.voxels.toLocaleString()} vox · peak ${r.peak.toFixed(2)}${is3d ? ` · z ${r.peakAt[2]}` : ''}`))));
  }

  // ── slices ──
  function depth(): number {
    return viewDims(shape, axis).depth;
  }
  function labelsFor(s: CachedSlice): Uint8Array {
    const l = s.labels.slice();
    editor.edits.applyToSlice(s.axis, s.index, l);
    return l;
  }
  function present(s: CachedSlice): void {
    displayed = s;
    displayLabels = labelsFor(s);
    view.show({ width: s.width, height: s.height, image: s.image, labels: displayLabels, overlays: s.overlays, aspect: pixelAspect(info.spacing, s.axis), flipY: flipRows(info.direction, s.axis) });
    el.sliceLabel.textContent = is3d ? `${axisName(s.axis)} ${s.index + 1} / ${depth()}` : `${s.width}×${s.height}`;
    el.slider.max = String(depth() - 1);
    el.slider.value = String(s.index);
  }
  let wanted = '';
  async function showSlice(a: ViewAxis, i: number, t0 = performance.now()): Promise<void> {
    i = Math.max(0, Math.min(viewDims(shape, a).depth - 1, i));
    axis = a;
    index[a] = i;
    const k = `${a}:${i}:${baseVersion}`;
    wanted = k;
    const hit = cache.get(a, i, baseVersion);
    if (hit) {
      present(hit);
      el.sliceLoading.hidden = true;
      perf.record('slice_change', performance.now() - t0);
    } else {
      const spin = setTimeout(() => (el.sliceLoading.hidden = false), 120);
      try {
        const s = await cache.load(a, i, baseVersion);
        if (wanted !== k || closed) return;
        present(s);
        perf.record('slice_change', performance.now() - t0);
      } catch (e) {
        if (wanted === k) toast(`Slice ${i + 1} could not be loaded: ${describeError(e)}`, 'error');
      } finally {
        clearTimeout(spin);
        if (wanted === k) el.sliceLoading.hidden = true;
      }
    }
    renderHeader();
    if (is3d) cache.prefetch(a, i, baseVersion, viewDims(shape, a).depth);
  }
  function redraw(): void {
    if (displayed) view.recompose(null);
  }
  function axisName(a: ViewAxis): string {
    return a === 'z' ? 'axial' : a === 'y' ? 'coronal' : 'sagittal';
  }

  // ── settings ──
  function setTool(t: Tool): void {
    if (!canEdit) return;
    if (t === 'fill-range' && !is3d) t = 'fill';
    tool = t;
    if (t === 'holes' && displayed && displayLabels) {
      editor.begin('fill holes');
      const r = editor.fillHoles({ axis, index: index[axis], labels: displayLabels }, label);
      afterStep(r.dirty);
      toast(r.pixels ? `Filled ${r.pixels} hole pixel(s).` : 'No holes in the selected label on this slice.');
      tool = 'brush';
    }
    renderHeader();
  }
  function setLabel(v: number): void {
    label = v;
    renderLegend();
  }
  function setBrush(px: number): void {
    brushSize = Math.max(1, Math.min(64, Math.round(px)));
    el.size.value = String(brushSize);
    renderHeader();
  }
  function setAxis(a: ViewAxis): void {
    if (!is3d || a === axis) return;
    settings.zoom = 1;
    settings.pan = [0, 0];
    void showSlice(a, index[a]);
  }
  function setWindow(id: string): void {
    const p = CT_PRESETS.find((x) => x.id === id);
    settings.window = p ? presetWindow(p) : info.window;
    el.windowSel.value = p ? id : 'auto';
    view.rewindow();
  }
  function cycleWindow(): void {
    const opts = [...el.windowSel.options].map((o) => o.value);
    setWindow(opts[(opts.indexOf(el.windowSel.value) + 1) % opts.length]!);
    const wl = windowLevel(settings.window);
    toast(`Window W${wl.width} L${wl.level}`);
  }

  // ── editing ──
  function afterStep(dirty: Rect | null): void {
    const step = editor.end();
    if (dirty) view.recompose(dirty);
    renderEdits();
    if (step) schedulePersist();
  }
  function schedulePersist(): void {
    clearTimeout(persistTimer);
    persistTimer = setTimeout(() => void persist(), 300);
  }
  async function persist(): Promise<void> {
    if (editor.edits.size) await putPending({ maskId, baseVersion, username: api.user?.username ?? '', savedAt: Date.now(), snapshot: editor.edits.snapshot() });
    else await deletePending(maskId);
  }
  function refreshAfter(step: { voxels: Uint32Array } | undefined): void {
    if (!step || !displayed || !displayLabels) return;
    const r = changeRectInView(step as never, shape, displayed.axis, displayed.index);
    if (r) {
      const fresh = labelsFor(displayed);
      displayLabels.set(fresh);
      view.recompose(r);
    }
    renderEdits();
    schedulePersist();
  }
  function undo(): void {
    if (!canEdit) return;
    const s = editor.undo();
    if (!s) return toast('Nothing to undo.');
    refreshAfter(s);
  }
  function redo(): void {
    if (!canEdit) return;
    const s = editor.redo();
    if (!s) return toast('Nothing to redo.');
    refreshAfter(s);
  }

  async function fillAt(p: { x: number; y: number }, range: boolean): Promise<void> {
    if (!displayed || !displayLabels) return;
    const a = displayed.axis, i = displayed.index;
    const o = { value: label, keepOthers };
    if (!range || fillRange === 0) {
      editor.begin('fill');
      const r = editor.fill({ axis: a, index: i, labels: displayLabels }, p, o);
      afterStep(r.dirty);
      if (!r.pixels) toast('Nothing to fill there (already this label, or protected).');
      return;
    }
    const d = viewDims(shape, a).depth;
    const from = Math.max(0, i - fillRange), to = Math.min(d - 1, i + fillRange);
    const { width, height } = viewDims(shape, a);
    el.sliceLoading.hidden = false;
    try {
      const planes = await api.labelPlanes(maskId, a, from, to, baseVersion);
      const cachePlanes = new Map<number, Uint8Array>();
      const planeAt = (k: number) => {
        let pl = cachePlanes.get(k);
        if (!pl) {
          pl = planes.slice((k - from) * width * height, (k - from + 1) * width * height);
          editor.edits.applyToSlice(a, k, pl);
          cachePlanes.set(k, pl);
        }
        return pl;
      };
      editor.begin(`fill slices ${from + 1}–${to + 1}`);
      const r = editor.fill({ axis: a, index: i, labels: displayLabels }, p, o, [from, to], planeAt);
      afterStep(r.dirty);
      toast(r.pixels ? `Filled ${r.pixels.toLocaleString()} voxels in slices ${from + 1}–${to + 1}.` : 'Nothing to fill there.');
    } catch (e) {
      editor.end();
      toast(`Fill failed: ${describeError(e)}`, 'error');
    } finally {
      el.sliceLoading.hidden = true;
    }
  }

  // ── mouse ──
  let painting: { last: { x: number; y: number }; pointer: number } | null = null;
  let panning: { x: number; y: number; pan: [number, number] } | null = null;
  function radius(): number {
    return brushSize / 2;
  }
  function updateCursor(e: PointerEvent): void {
    if (!canEdit || (tool !== 'brush' && tool !== 'eraser')) {
      el.cursor.hidden = true;
      return;
    }
    const b = view.canvas.getBoundingClientRect();
    const d = brushSize * view.cssScale();
    el.cursor.hidden = false;
    el.cursor.style.width = el.cursor.style.height = `${d}px`;
    el.cursor.style.transform = `translate(${e.clientX - b.left - d / 2}px, ${e.clientY - b.top - d / 2}px)`;
    el.cursor.classList.toggle('erase', tool === 'eraser');
  }
  /** Paint to `p`; `t0` is when the mouse event happened (the brush figure is event → pixels). */
  function paintTo(p: { x: number; y: number }, t0 = performance.now()): void {
    if (!painting || !displayLabels || !displayed) return;
    const dirty = editor.brush({ axis: displayed.axis, index: displayed.index, labels: displayLabels }, painting.last, p, radius(), tool === 'eraser' ? { value: 0, ...(keepOthers ? { onlyOver: label } : {}) } : { value: label, keepOthers });
    painting.last = p;
    if (dirty) view.recompose(dirty);
    perf.record('brush', performance.now() - t0);
  }
  view.canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  view.canvas.addEventListener('pointerdown', (e) => {
    timer.activity();
    const p = view.toSlice(e.clientX, e.clientY);
    if (!p) return;
    if (e.button === 1 || e.button === 2 || (e.button === 0 && (spaceDown || !canEdit))) {
      panning = { x: e.clientX, y: e.clientY, pan: [...settings.pan] };
      view.canvas.setPointerCapture(e.pointerId);
      return;
    }
    if (e.button !== 0 || !canEdit) return;
    if (tool === 'brush' || tool === 'eraser') {
      editor.begin(tool);
      painting = { last: p, pointer: e.pointerId };
      view.canvas.setPointerCapture(e.pointerId);
      paintTo(p, e.timeStamp);
    } else if (tool === 'fill' || tool === 'fill-range') {
      void fillAt(p, tool === 'fill-range');
    }
  });
  view.canvas.addEventListener('pointermove', (e) => {
    timer.activity();
    updateCursor(e);
    if (panning) {
      const dpr = view.canvas.width / view.canvas.getBoundingClientRect().width;
      settings.pan = [panning.pan[0] + (e.clientX - panning.x) * dpr, panning.pan[1] + (e.clientY - panning.y) * dpr];
      view.draw();
      return;
    }
    if (!painting) return;
    const p = view.toSlice(e.clientX, e.clientY);
    if (p) paintTo(p, e.timeStamp);
  });
  const endPointer = (e: PointerEvent) => {
    if (panning) {
      panning = null;
      return;
    }
    if (!painting || e.pointerId !== painting.pointer) return;
    painting = null;
    afterStep(null);
  };
  view.canvas.addEventListener('pointerup', endPointer);
  view.canvas.addEventListener('pointercancel', endPointer);
  view.canvas.addEventListener('pointerleave', () => (el.cursor.hidden = true));
  view.canvas.addEventListener(
    'wheel',
    (e) => {
      e.preventDefault();
      timer.activity();
      if (e.ctrlKey || e.metaKey) {
        const b = view.canvas.getBoundingClientRect();
        const dpr = view.canvas.width / b.width;
        const z = zoomAbout(settings.zoom, settings.pan, e.deltaY < 0 ? 1.15 : 1 / 1.15, (e.clientX - b.left) * dpr, (e.clientY - b.top) * dpr, view.canvas.width, view.canvas.height);
        settings.zoom = z.zoom;
        settings.pan = z.pan;
        view.draw();
      } else if (is3d) void showSlice(axis, index[axis] + (e.deltaY > 0 ? 1 : -1), e.timeStamp);
    },
    { passive: false },
  );
  el.slider.addEventListener('input', (e) => void showSlice(axis, Number(el.slider.value), e.timeStamp));
  let spaceDown = false;
  const onSpace = (e: KeyboardEvent) => {
    if (e.key === ' ' && (e.target as HTMLElement).tagName !== 'INPUT') {
      spaceDown = e.type === 'keydown';
      if (e.type === 'keydown') e.preventDefault();
    }
  };
  document.addEventListener('keydown', onSpace);
  document.addEventListener('keyup', onSpace);
  const onResize = () => view.draw();
  window.addEventListener('resize', onResize);
  // the canvas box also changes size without a window resize (toolbar wrapping, side panel)
  const resizeObserver = new ResizeObserver(() => view.resize() && view.draw());
  resizeObserver.observe(canvasBox);
  const onVisibility = () => {
    timer.setVisible(document.visibilityState === 'visible');
    if (document.visibilityState === 'hidden' && editor.edits.size) void persist();
  };
  document.addEventListener('visibilitychange', onVisibility);
  // closing the tab with unsaved edits: keep them (IndexedDB) and let the browser ask
  const onBeforeUnload = (e: BeforeUnloadEvent) => {
    if (editor.inStep) afterStep(null);
    if (!editor.edits.size) return;
    void persist();
    e.preventDefault();
  };
  window.addEventListener('beforeunload', onBeforeUnload);

  // ── regions ──
  function jumpToRegion(i: number): void {
    const r = regions[i];
    if (!r) return;
    regionCursor = i;
    renderRegions();
    const [pi, pj, pk] = r.peakAt;
    const v = voxelToView(axis, pi, pj, pk);
    void showSlice(axis, v.index).then(() => {
      const b = voxelToView(axis, r.min[0], r.min[1], r.min[2]);
      const e = voxelToView(axis, r.max[0], r.max[1], r.max[2]);
      const css = view.toCss({ x: Math.min(b.q, e.q), y: Math.min(b.r, e.r), w: Math.abs(e.q - b.q) + 1, h: Math.abs(e.r - b.r) + 1 });
      if (!css) return;
      el.marker.hidden = false;
      Object.assign(el.marker.style, { left: `${css.x - 4}px`, top: `${css.y - 4}px`, width: `${css.w + 8}px`, height: `${css.h + 8}px` });
      clearTimeout(markerTimer);
      markerTimer = setTimeout(() => (el.marker.hidden = true), 2500);
    });
  }
  let markerTimer: ReturnType<typeof setTimeout> | undefined;

  // ── saving ──
  async function save(opts: { onto?: number; quiet?: boolean } = {}): Promise<boolean> {
    if (!canEdit) return false;
    if (editor.inStep) afterStep(null);
    if (!editor.edits.size) return true;
    if (saving) return false;
    saving = true;
    renderEdits();
    clearTimeout(retryTimer);
    const planes = editor.edits.toPlaneRuns();
    const t0 = performance.now();
    try {
      const r = await api.saveEdits(maskId, { baseVersion, ...(opts.onto !== undefined ? { onto: opts.onto } : {}), planes });
      perf.record('save', performance.now() - t0);
      const old = baseVersion;
      const edits = editor.edits;
      cache.rekey(old, r.version, (s) => {
        const l = s.labels.slice();
        edits.applyToSlice(s.axis, s.index, l);
        return l;
      });
      baseVersion = r.version;
      info.currentVersion = r.version;
      info.status = 'open';
      info.versions.unshift({ version: r.version, origin: 'human', author: api.user?.username ?? null, note: null, createdAt: new Date().toISOString() });
      const present = new Set(info.labels);
      for (const p of planes) for (let t = 2; t < p.runs.length; t += 3) if (p.runs[t]) present.add(p.runs[t]!);
      info.labels = [...present].sort((a, b) => a - b);
      editor.reset();
      retryDelay = 2000;
      await deletePending(maskId);
      if (!opts.quiet) toast(`Saved as version ${r.version} (${r.changed.toLocaleString()} voxels changed).`, 'ok');
      if (displayed) displayed = cache.get(displayed.axis, displayed.index, baseVersion) ?? displayed;
      renderHeader();
      renderVersions();
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === 'CONFLICT' && e.details) {
        saving = false;
        renderEdits();
        void refreshDrafts();
        return conflict(e.details as unknown as ConflictDetails);
      }
      await persist();
      if (e instanceof ApiError && (e.network || e.status >= 500)) {
        toast(`Not saved: ${describeError(e)} Retrying in ${Math.round(retryDelay / 1000)} s.`, 'error');
        retryTimer = setTimeout(() => void save({ quiet: false }), retryDelay);
        retryDelay = Math.min(retryDelay * 2, 60_000);
      } else toast(`Not saved: ${describeError(e)}`, 'error');
      return false;
    } finally {
      saving = false;
      renderEdits();
    }
  }

  async function conflict(d: ConflictDetails): Promise<boolean> {
    const theirs = d.currentVersion;
    info.currentVersion = theirs;
    renderHeader();
    const a = displayed?.axis ?? axis;
    const i = displayed?.index ?? index[axis];
    const mine = new SliceView({ ...settings, zoom: 1, pan: [0, 0] }, () => lut, false);
    const other = new SliceView({ ...settings, zoom: 1, pan: [0, 0] }, () => lut, false);
    const who = d.current ? `${d.current.author ?? 'a model'} ${ago(d.current.createdAt)}` : 'someone';
    const body = h('div', { class: 'conflict' },
      h('p', {}, `Version ${theirs} was saved by ${who} while you were editing version ${baseVersion}. Your edit is not lost: the server kept it as a draft, and this browser keeps your ${editor.edits.size.toLocaleString()} changed voxels.`),
      h('div', { class: 'compare' }, h('figure', {}, h('div', { class: 'cmp-box', id: 'theirs' }, other.canvas), h('figcaption', {}, `Theirs: version ${theirs}`)), h('figure', {}, h('div', { class: 'cmp-box', id: 'mine' }, mine.canvas), h('figcaption', {}, `Yours: version ${baseVersion} + your edits`))),
      h('p', { class: 'muted' }, `${axisName(a)} slice ${i + 1}. Keep yours: your version replaces theirs. Take theirs: drop your edits. Re-apply: load theirs and put your strokes on top, then check and save.`),
    );
    const p = dialog<'mine' | 'theirs' | 'reapply' | 'later'>(`Conflict: version ${theirs} is newer`, body, [
      { label: 'Keep mine', value: () => 'mine', primary: true, id: 'keep-mine' },
      { label: 'Take theirs', value: () => 'theirs', danger: true, id: 'take-theirs' },
      { label: 'Re-apply my strokes on theirs', value: () => 'reapply', id: 'reapply' },
      { label: 'Decide later', value: () => 'later', id: 'later' },
    ], { wide: true });
    // draw both sides once the dialog is in the document
    void (async () => {
      try {
        const [t, m] = await Promise.all([cache.load(a, i, theirs), cache.load(a, i, baseVersion)]);
        const asp = pixelAspect(info.spacing, a), flip = flipRows(info.direction, a);
        other.show({ width: t.width, height: t.height, image: t.image, labels: t.labels, overlays: t.overlays, aspect: asp, flipY: flip });
        mine.show({ width: m.width, height: m.height, image: m.image, labels: labelsFor(m), overlays: m.overlays, aspect: asp, flipY: flip });
      } catch (e) {
        toast(`Could not load the comparison: ${describeError(e)}`, 'error');
      }
    })();
    const choice = await p;
    if (choice === 'mine') return save({ onto: theirs });
    if (choice === 'theirs') {
      editor.reset();
      await deletePending(maskId);
      baseVersion = theirs;
      renderEdits();
      renderVersions();
      await showSlice(axis, index[axis]);
      toast(`Now on version ${theirs}; your edit stays on the server as a draft.`);
      return false;
    }
    if (choice === 'reapply') {
      baseVersion = theirs;
      await persist();
      await showSlice(axis, index[axis]);
      toast(`Your strokes are now on version ${theirs}. Check them and save.`);
      return false;
    }
    return false;
  }

  /**
   * Put a draft's labels into the editor: every voxel where the draft differs from what is shown
   * (the version being edited plus unsaved edits) becomes an unsaved edit, in one undoable step;
   * Save then makes a new version on top of the version being edited.
   */
  async function loadDraft(d: Draft): Promise<void> {
    if (!canEdit || saving || loadingDraft) return;
    if (editor.inStep) afterStep(null);
    if (editor.edits.size) {
      const ok = await dialog<boolean>('Load the draft into the editor?', `Your ${editor.edits.size.toLocaleString()} unsaved voxel edits will be replaced by the draft's labels (Undo brings them back).`, [
        { label: 'Load the draft', value: () => true, primary: true, id: 'confirm-load-draft' },
        { label: 'Cancel', value: () => false },
      ]);
      if (!ok || closed) return;
    }
    loadingDraft = true;
    renderDrafts();
    el.sliceLoading.hidden = false;
    const onto = baseVersion;
    try {
      const [draft, base] = await Promise.all([api.draftLabels(maskId, d.id), api.labelPlanes(maskId, 'z', 0, shape[2] - 1, onto)]);
      if (closed) return;
      if (onto !== baseVersion || saving) throw new Error('the case changed while the draft was loading; try again');
      if (draft.length !== base.length) throw new Error(`the draft holds ${draft.length.toLocaleString()} voxels, the case ${base.length.toLocaleString()}`);
      if (editor.inStep) afterStep(null);
      const step = new ChangeBuilder(`load draft ${d.id}`);
      const edited = editor.edits.size > 0;
      for (let i = 0; i < draft.length; i++) {
        const shown = edited ? (editor.edits.get(i) ?? base[i]!) : base[i]!;
        const v = draft[i]!;
        if (v === shown) continue;
        step.record(i, shown, v);
        editor.edits.set(i, v, shown);
      }
      const c = step.build();
      if (!c) {
        toast('The draft holds the same labels as the editor: nothing to load.');
        return;
      }
      editor.history.push(c);
      if (displayed && displayLabels) {
        displayLabels.set(labelsFor(displayed));
        view.recompose(null);
      }
      renderEdits();
      schedulePersist();
      toast(`Draft loaded: ${c.voxels.length.toLocaleString()} voxels differ from what was shown. Check, then save (Undo reverts).`, 'ok');
    } catch (e) {
      toast(`The draft could not be loaded: ${describeError(e)}`, 'error');
    } finally {
      loadingDraft = false;
      el.sliceLoading.hidden = true;
      renderDrafts();
    }
  }

  async function saveAndNext(): Promise<void> {
    if (!(await save())) return;
    await goNext();
  }
  async function goNext(): Promise<void> {
    if (!(await nav.next(maskId))) toast('No other open case in the queue.');
  }

  async function review(decision: 'accept' | 'reject'): Promise<void> {
    if (!canReview) return;
    let reason: string | undefined;
    if (decision === 'reject') {
      const ta = h('textarea', { rows: 4, id: 'reject-reason', placeholder: 'What is wrong with this mask? (required)', 'aria-label': 'reason' }) as HTMLTextAreaElement;
      const err = h('p', { class: 'error-text' });
      const r = await dialog<string>('Reject this mask', h('div', {}, ta, err), [
        { label: 'Reject', danger: true, id: 'confirm-reject', value: () => (ta.value.trim() ? ta.value.trim() : ((err.textContent = 'Please give a reason.'), undefined)) },
        { label: 'Cancel', value: () => '' },
      ]);
      if (!r) return;
      reason = r;
    }
    if (editor.edits.size && !(await save({ quiet: true }))) return;
    try {
      await api.review(maskId, { decision, version: baseVersion, ...(reason ? { reason } : {}), timeSpentMs: timer.elapsedMs() });
      info.status = decision === 'accept' ? 'accepted' : 'rejected';
      renderHeader();
      toast(`${decision === 'accept' ? 'Accepted' : 'Rejected'} version ${baseVersion} after ${duration(timer.elapsedMs())}.`, 'ok');
      claimed = false;
      await goNext();
    } catch (e) {
      toast(`Not recorded: ${describeError(e)}`, 'error');
    }
  }

  async function leave(): Promise<void> {
    if (editor.inStep) afterStep(null);
    if (editor.edits.size) await persist();
    nav.toQueue();
  }

  // ── shortcuts ──
  const shortcuts: Shortcut[] = [
    { keys: '↑ / ↓, wheel', what: 'previous / next slice', group: 'Navigate', match: (e) => e.key === 'ArrowUp' || e.key === 'ArrowDown', run: (e) => is3d && void showSlice(axis, index[axis] + (e.key === 'ArrowUp' ? -1 : 1), e.timeStamp) },
    { keys: 'PgUp / PgDn', what: '10 slices back / forward', group: 'Navigate', match: (e) => e.key === 'PageUp' || e.key === 'PageDown', run: (e) => is3d && void showSlice(axis, index[axis] + (e.key === 'PageUp' ? -10 : 10), e.timeStamp) },
    { keys: 'Home / End', what: 'first / last slice', group: 'Navigate', match: (e) => e.key === 'Home' || e.key === 'End', run: (e) => is3d && void showSlice(axis, e.key === 'Home' ? 0 : depth() - 1) },
    { keys: 'A / C / S', what: 'axial / coronal / sagittal', group: 'Navigate', match: (e) => key.plain('a')(e) || key.plain('c')(e) || key.plain('s')(e), run: (e) => setAxis(({ a: 'z', c: 'y', s: 'x' } as const)[e.key.toLowerCase() as 'a' | 'c' | 's']) },
    { keys: 'N / P', what: 'next / previous flagged region', group: 'Navigate', match: (e) => key.plain('n')(e) || key.plain('p')(e), run: (e) => regions.length && jumpToRegion((regionCursor + (e.key.toLowerCase() === 'n' ? 1 : regions.length - 1)) % regions.length) },
    { keys: 'R', what: 'reset zoom and pan', group: 'Navigate', match: key.plain('r'), run: () => ((settings.zoom = 1), (settings.pan = [0, 0]), view.draw()) },
    { keys: '+ / −', what: 'zoom in / out', group: 'Navigate', match: (e) => !e.ctrlKey && (e.key === '+' || e.key === '=' || e.key === '-'), run: (e) => ((settings.zoom = Math.max(0.25, Math.min(32, settings.zoom * (e.key === '-' ? 1 / 1.25 : 1.25)))), view.draw()) },
    { keys: 'B / E', what: 'brush / eraser', group: 'Edit', match: (e) => key.plain('b')(e) || key.plain('e')(e), run: (e) => setTool(e.key.toLowerCase() === 'b' ? 'brush' : 'eraser') },
    { keys: 'F / G', what: 'fill in this slice / through ±N slices', group: 'Edit', match: (e) => key.plain('f')(e) || key.plain('g')(e), run: (e) => setTool(e.key.toLowerCase() === 'f' ? 'fill' : 'fill-range') },
    { keys: 'H', what: 'fill holes of the selected label (this slice)', group: 'Edit', match: key.plain('h'), run: () => setTool('holes') },
    { keys: '[ / ]', what: 'smaller / larger brush', group: 'Edit', match: (e) => e.key === '[' || e.key === ']', run: (e) => setBrush(e.key === '[' ? brushSize / 1.25 : Math.max(brushSize + 1, brushSize * 1.25)) },
    { keys: '1 … 9', what: 'select label (legend order)', group: 'Edit', match: (e) => !e.ctrlKey && !e.altKey && /^[1-9]$/.test(e.key), run: (e) => legend[Number(e.key) - 1] && setLabel(legend[Number(e.key) - 1]!.value) },
    { keys: 'Ctrl+Z', what: 'undo', group: 'Edit', match: (e) => key.ctrl('z')(e) || (!e.ctrlKey && !e.metaKey && e.key === 'z'), run: () => undo() },
    { keys: 'Ctrl+Shift+Z, Ctrl+Y', what: 'redo', group: 'Edit', match: (e) => key.ctrl('z', true)(e) || key.ctrl('y')(e) || (!e.ctrlKey && !e.metaKey && e.key === 'Z'), run: () => redo() },
    { keys: 'W', what: 'next window preset', group: 'Display', match: key.plain('w'), run: () => cycleWindow() },
    { keys: 'L', what: 'labels on / off', group: 'Display', match: key.plain('l'), run: () => toggle('toggle-labels') },
    { keys: 'M', what: 'heat map on / off', group: 'Display', match: key.plain('m'), run: () => toggle('toggle-heat') },
    { keys: 'O', what: 'label outlines on / off', group: 'Display', match: key.plain('o'), run: () => toggle('toggle-outline') },
    { keys: 'Ctrl+S', what: 'save', group: 'Case', match: key.ctrl('s'), run: () => void save() },
    { keys: 'Ctrl+Enter', what: 'save and open the next case', group: 'Case', match: (e) => (e.ctrlKey || e.metaKey) && e.key === 'Enter', run: () => void saveAndNext() },
    { keys: 'Shift+A', what: 'accept', group: 'Case', match: key.plain('A'), run: () => void review('accept') },
    { keys: 'Shift+R', what: 'reject with a reason', group: 'Case', match: key.plain('R'), run: () => void review('reject') },
    { keys: 'Esc', what: 'back to the queue', group: 'Case', match: key.exact('Escape'), run: () => void leave() },
    { keys: '?', what: 'this help', group: 'Case', match: key.exact('?'), run: () => showHelp(shortcuts) },
  ];
  function toggle(id: string): void {
    const c = root.querySelector<HTMLInputElement>(`#${id}`);
    if (!c) return;
    c.checked = !c.checked;
    c.dispatchEvent(new Event('change'));
  }
  const removeKeys = installShortcuts(shortcuts);
  const onKeyActivity = () => timer.activity();
  document.addEventListener('keydown', onKeyActivity);
  const offReach = api.onReachability((up) => {
    if (up && editor.edits.size && !saving && retryTimer) {
      clearTimeout(retryTimer);
      void save();
    }
  });
  const timeTick = setInterval(() => (el.time.textContent = `Time on case: ${duration(timer.elapsedMs())}`), 1000);

  // ── start ──
  renderHeader();
  renderLegend();
  renderEdits();
  renderVersions();
  renderRegions();
  void refreshDrafts();
  cache.onOverlays = (s) => {
    if (s === displayed) redraw();
  };
  // the first slice and the edits kept in this browser, together (the slice is almost always of
  // the current version; kept edits made on an older one load that version's slice instead)
  const firstLoad = early.then(
    (d) => (d.header.version === baseVersion && d.header.index === index[axis] ? cache.adopt(d) : cache.load(axis, index[axis], baseVersion, { overlaysLater: true })),
    () => cache.load(axis, index[axis], baseVersion, { overlaysLater: true }),
  );
  firstLoad.catch(() => undefined);
  const kept = await getPending(maskId).catch(() => null);
  if (kept && canEdit) {
    for (const p of kept.snapshot.planes) for (let t = 0; t < p.idx.length; t++) editor.edits.set(p.z * shape[0] * shape[1] + p.idx[t]!, p.value[t]!, p.base[t]!);
    baseVersion = kept.baseVersion;
    renderEdits();
    toast(`Restored ${editor.edits.size.toLocaleString()} unsaved voxel edits from ${new Date(kept.savedAt).toLocaleString()} (made on version ${kept.baseVersion}). Save to keep them.`);
  }
  try {
    const first = baseVersion === info.currentVersion ? await firstLoad : await cache.load(axis, index[axis], baseVersion, { overlaysLater: true });
    if (closed) return () => undefined;
    view.resize();
    present(first);
    loading.remove();
    perf.record('first_paint', performance.now() - openedAt);
    perf.mark('first-paint');
  } catch (e) {
    mount(loading, h('p', {}, `The case could not be shown: ${describeError(e)}`));
  }
  renderHeader();
  if (is3d) cache.prefetch(axis, index[axis], baseVersion, depth());
  if (canEdit && !info.claimedBy) void api.claim(maskId).then(() => (claimed = true), () => undefined);
  if (overlayKinds.length) {
    void api.regions(maskId).then(
      (r) => {
        regions = r.regions;
        renderRegions();
      },
      (e) => mount(el.regions, h('li', { class: 'error-text' }, describeError(e))),
    );
  }

  // test and benchmark hooks (read-only views of the state)
  (window as unknown as { __viewer?: unknown }).__viewer = {
    maskId,
    get baseVersion() {
      return baseVersion;
    },
    get axis() {
      return axis;
    },
    get index() {
      return index[axis];
    },
    get editsSize() {
      return editor.edits.size;
    },
    get historyDepth() {
      return editor.history.depth;
    },
    get cachedSlices() {
      return cache.size;
    },
    /** Client coordinates of a continuous slice position. */
    sliceToClient: (x: number, y: number) => view.toClient(x, y),
    clientToSlice: (x: number, y: number) => view.toSlice(x, y),
    brushRadius: () => radius(),
    gpu: gpuInfo(),
    showSlice: (a: Axis, i: number) => showSlice(a, i),
  };

  return () => {
    closed = true;
    removeKeys();
    offReach();
    clearInterval(timeTick);
    clearTimeout(retryTimer);
    clearTimeout(persistTimer);
    document.removeEventListener('keydown', onSpace);
    document.removeEventListener('keyup', onSpace);
    document.removeEventListener('keydown', onKeyActivity);
    document.removeEventListener('visibilitychange', onVisibility);
    window.removeEventListener('beforeunload', onBeforeUnload);
    window.removeEventListener('resize', onResize);
    resizeObserver.disconnect();
    if (editor.edits.size) void persist();
    if (claimed) void api.release(maskId).catch(() => undefined);
    cache.clear();
    delete (window as unknown as { __viewer?: unknown }).__viewer;
  };
}
