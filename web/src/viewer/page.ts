/**
 * The viewer page: one review case. Builds the state object and the controllers — layout
 * (layout.ts), slices and display (navigation.ts), editing tools and mouse (editing.ts), saving
 * and conflicts (saving.ts), drafts (drafts.ts) — wires keyboard shortcuts, claims (with a
 * heartbeat and a banner when someone else is on the case), review progress, and opens the first
 * slice together with the edits this browser kept (restored as one undoable step).
 */
import { restoreSnapshot } from '../../../src/core/viewer/index.js';
import { describeError, type Api, type Axis } from '../api.js';
import { getPending } from '../pending.js';
import { ago, duration, h, mount, toast } from '../ui.js';
import { perf } from '../perf.js';
import { DraftsController } from './drafts.js';
import { EditingController } from './editing.js';
import { gpuInfo } from './gpu.js';
import { ViewerLayout } from './layout.js';
import { warmUpDrawing } from './slice-view.js';
import { MultiView } from './multiview.js';
import { Navigation } from './navigation.js';
import { SaveController } from './saving.js';
import { installShortcuts, key, showHelp, type Shortcut } from './shortcuts.js';
import { ViewerState, type Viewer, type ViewerNav } from './state.js';

export type { ViewerNav } from './state.js';

/** How often an open case renews its claim while the annotator is active. */
const HEARTBEAT_MS = 60_000;

function shortcutsOf(v: Viewer, root: HTMLElement): Shortcut[] {
  const { st, slices, edit, saver } = v;
  const toggle = (id: string) => {
    const c = root.querySelector<HTMLInputElement>(`#${id}`);
    if (!c) return;
    c.checked = !c.checked;
    c.dispatchEvent(new Event('change'));
  };
  const step = (d: number, t?: number) => st.is3d && void slices.showSlice(st.axis, st.index[st.axis] + d, t);
  const list: Shortcut[] = [
    { keys: '↑ / ↓, wheel', what: 'previous / next slice', group: 'Navigate', match: (e) => e.key === 'ArrowUp' || e.key === 'ArrowDown', run: (e) => step(e.key === 'ArrowUp' ? -1 : 1, e.timeStamp) },
    { keys: 'PgUp / PgDn', what: '10 slices back / forward', group: 'Navigate', match: (e) => e.key === 'PageUp' || e.key === 'PageDown', run: (e) => step(e.key === 'PageUp' ? -10 : 10, e.timeStamp) },
    { keys: 'Home / End', what: 'first / last slice', group: 'Navigate', match: (e) => e.key === 'Home' || e.key === 'End', run: (e) => st.is3d && void slices.showSlice(st.axis, e.key === 'Home' ? 0 : slices.depth() - 1) },
    { keys: 'A / C / S', what: 'axial / coronal / sagittal', group: 'Navigate', match: (e) => key.plain('a')(e) || key.plain('c')(e) || key.plain('s')(e), run: (e) => slices.setAxis(({ a: 'z', c: 'y', s: 'x' } as const)[e.key.toLowerCase() as 'a' | 'c' | 's']) },
    { keys: 'N / P', what: 'next / previous flagged region', group: 'Navigate', match: (e) => key.plain('n')(e) || key.plain('p')(e), run: (e) => st.regions.length && slices.jumpToRegion((st.regionCursor + (e.key.toLowerCase() === 'n' ? 1 : st.regions.length - 1)) % st.regions.length) },
    { keys: 'R', what: 'zoom to fit', group: 'Navigate', match: key.plain('r'), run: () => slices.resetZoom() },
    { keys: '+ / −', what: 'zoom in / out', group: 'Navigate', match: (e) => !e.ctrlKey && (e.key === '+' || e.key === '=' || e.key === '-'), run: (e) => ((st.settings.zoom = Math.max(0.25, Math.min(32, st.settings.zoom * (e.key === '-' ? 1 / 1.25 : 1.25)))), st.view.draw(), slices.renderZoom()) },
    { keys: 'Q', what: 'window / level tool (drag)', group: 'Display', match: key.plain('q'), run: () => edit.setTool('wl') },
    { keys: 'V', what: 'one view / three views (linked crosshair)', group: 'Navigate', match: key.plain('v'), run: () => v.multi.setLayout(v.multi.kind === 3 ? 1 : 3) },
    { keys: 'X', what: 'crosshair tool: click moves the other views', group: 'Navigate', match: key.plain('x'), run: () => st.is3d && edit.setTool('cross') },
    { keys: 'B / E', what: 'brush / eraser', group: 'Edit', match: (e) => key.plain('b')(e) || key.plain('e')(e), run: (e) => edit.setTool(e.key.toLowerCase() === 'b' ? 'brush' : 'eraser') },
    { keys: 'T', what: 'threshold brush: paints only pixels in the ≈ intensity range', group: 'Edit', match: key.plain('t'), run: () => edit.setTool('threshold') },
    { keys: 'F / G', what: 'fill in this slice / through ±N slices (Shift+click: past the guard)', group: 'Edit', match: (e) => key.plain('f')(e) || key.plain('g')(e), run: (e) => edit.setTool(e.key.toLowerCase() === 'f' ? 'fill' : 'fill-range') },
    { keys: 'I', what: 'fill ≈: connected pixels of similar intensity', group: 'Edit', match: key.plain('i'), run: () => edit.setTool('bounded') },
    { keys: 'Shift+I', what: 'fill between slices (interpolate the selected label)', group: 'Edit', match: key.plain('I'), run: () => void edit.interpolate() },
    { keys: 'K', what: '3D sphere brush (size in mm)', group: 'Edit', match: key.plain('k'), run: () => edit.setTool('sphere') },
    { keys: 'H', what: 'fill holes of the selected label (this slice)', group: 'Edit', match: key.plain('h'), run: () => edit.setTool('holes') },
    { keys: '[ / ]', what: 'smaller / larger brush', group: 'Edit', match: (e) => e.key === '[' || e.key === ']', run: (e) => {
      const cur = st.tool === 'sphere' ? st.sphereMm : st.brushSize;
      edit.setBrush(e.key === '[' ? cur / 1.25 : Math.max(cur + 1, cur * 1.25));
    } },
    { keys: '1 … 9', what: 'select label (legend order)', group: 'Edit', match: (e) => !e.ctrlKey && !e.altKey && /^[1-9]$/.test(e.key), run: (e) => st.legend[Number(e.key) - 1] && edit.setLabel(st.legend[Number(e.key) - 1]!.value) },
    { keys: 'Ctrl+Z', what: 'undo', group: 'Edit', match: (e) => key.ctrl('z')(e) || (!e.ctrlKey && !e.metaKey && e.key === 'z'), run: () => edit.undo() },
    { keys: 'Ctrl+Shift+Z, Ctrl+Y', what: 'redo', group: 'Edit', match: (e) => key.ctrl('z', true)(e) || key.ctrl('y')(e) || (!e.ctrlKey && !e.metaKey && e.key === 'Z'), run: () => edit.redo() },
    { keys: 'W', what: 'next window preset', group: 'Display', match: key.plain('w'), run: () => slices.cycleWindow() },
    { keys: 'L', what: 'labels on / off', group: 'Display', match: key.plain('l'), run: () => toggle('toggle-labels') },
    { keys: 'M', what: 'heat map on / off', group: 'Display', match: key.plain('m'), run: () => toggle('toggle-heat') },
    { keys: 'O', what: 'label outlines on / off', group: 'Display', match: key.plain('o'), run: () => toggle('toggle-outline') },
    { keys: 'Ctrl+S', what: 'save', group: 'Case', match: key.ctrl('s'), run: () => void saver.save() },
    { keys: 'Ctrl+Enter', what: 'save and open the next case', group: 'Case', match: (e) => (e.ctrlKey || e.metaKey) && e.key === 'Enter', run: () => void saver.saveAndNext() },
    { keys: 'Shift+A', what: 'accept', group: 'Case', match: key.plain('A'), run: () => void saver.review('accept') },
    { keys: 'Shift+R', what: 'reject with a reason', group: 'Case', match: key.plain('R'), run: () => void saver.review('reject') },
    { keys: 'Esc', what: 'back to the queue', group: 'Case', match: key.exact('Escape'), run: () => void saver.leave() },
    { keys: '?', what: 'this help', group: 'Case', match: key.exact('?'), run: () => showHelp(list) },
  ];
  return list;
}

/** Show who else is on the case (their claim is fresh), or hide the banner. */
function renderClaim(v: Viewer): void {
  const { st, ui } = v;
  const other = st.info.claimedBy && st.info.claimedBy !== st.api.user?.username ? st.info.claimedBy : null;
  ui.el.claimBanner.hidden = !other;
  if (other) ui.el.claimBanner.textContent = `${other} is working on this case (active ${ago(st.info.claimedAt ?? null)}). Your saves may conflict with theirs; coordinate before editing.`;
}

/** "k of N done" and "done today" for the case's data set. */
async function renderProgress(v: Viewer): Promise<void> {
  const { st, ui } = v;
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  try {
    const p = await st.api.progress(st.info.datasetId, today);
    if (!st.closed) ui.el.progress.textContent = `${p.done} of ${p.total} done · ${p.doneByMeSince} today`;
  } catch {
    // informative only
  }
}

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

  // the case and its middle axial slice together (the server streams that slice out of the file
  // while it reads the case); a failure of the slice alone is retried through the cache below
  const early = api.slice(maskId, 'z', null, null, ['image', 'labels']);
  early.catch(() => undefined);
  // the edits this browser kept for the case (IndexedDB), read meanwhile rather than after the case
  const keptLoad = getPending(maskId).catch(() => null);
  // the drawing code compiled while the network works (a no-op once the queue page did it)
  warmUpDrawing();
  let st: ViewerState;
  try {
    st = new ViewerState(api, maskId, await api.caseInfo(maskId));
    perf.mark('case-info');
  } catch (e) {
    mount(stage, h('div', { class: 'error-box' }, h('p', {}, describeError(e)), h('button', { onclick: () => nav.toQueue() }, 'Back to the queue')));
    return () => undefined;
  }
  const v = { st, nav } as Viewer;
  v.slices = new Navigation(v);
  v.edit = new EditingController(v);
  v.saver = new SaveController(v);
  v.drafts = new DraftsController(v);
  v.multi = new MultiView(v);
  st.view.onDraw = () => v.multi.placeCrosshairs();
  v.ui = new ViewerLayout(v, root, loading);
  const { ui, slices, edit, saver } = v;
  ui.shortcuts = shortcutsOf(v, root);
  edit.install();

  const listeners: [EventTarget, string, EventListener][] = [];
  const listen = (t: EventTarget, type: string, f: EventListener) => {
    t.addEventListener(type, f);
    listeners.push([t, type, f]);
  };
  listen(window, 'resize', () => st.view.draw());
  listen(ui.el.slider, 'input', ((e: Event) => void slices.showSlice(st.axis, Number(ui.el.slider.value), e.timeStamp)) as EventListener);
  // the canvas box also changes size without a window resize (side panel, banners)
  const resizeObserver = new ResizeObserver(() => {
    if (st.view.resize()) st.view.draw();
    slices.renderZoom();
  });
  resizeObserver.observe(ui.canvasBox);
  listen(document, 'visibilitychange', () => {
    st.timer.setVisible(document.visibilityState === 'visible');
    if (document.visibilityState === 'hidden' && st.editor.edits.size) void saver.persist();
  });
  // closing the tab with unsaved edits: keep them (IndexedDB) and let the browser ask
  listen(window, 'beforeunload', ((e: BeforeUnloadEvent) => {
    if (st.editor.inStep) edit.afterStep(null);
    if (!st.editor.edits.size) return;
    void saver.persist();
    e.preventDefault();
  }) as EventListener);
  const removeKeys = installShortcuts(ui.shortcuts);
  listen(document, 'keydown', () => st.timer.activity());
  const offReach = api.onReachability((up) => up && saver.retryNow());
  const timeTick = setInterval(() => (ui.el.time.textContent = `Time on case: ${duration(st.timer.elapsedMs())}`), 1000);
  // claim heartbeat: renewed while the annotator works here; a closed browser's claim expires
  let lastBeat = 0;
  const heartbeat = setInterval(() => {
    if (!st.claimed || st.closed || document.visibilityState !== 'visible') return;
    if (performance.now() - lastBeat < HEARTBEAT_MS - 1000) return;
    lastBeat = performance.now();
    void api.claim(maskId).catch(() => undefined);
  }, HEARTBEAT_MS / 4);

  // ── start ──
  ui.renderHeader();
  ui.renderLegend();
  ui.renderEdits();
  ui.renderVersions();
  ui.renderRegions();
  renderClaim(v);
  nav.opened?.(st.info.datasetId);
  st.cache.onOverlays = (s) => {
    if (s === st.displayed) slices.redraw();
  };
  // the first slice and the edits kept in this browser, together (the slice is almost always of
  // the current version; kept edits made on an older one load that version's slice instead)
  const firstLoad = early.then(
    (d) => (d.header.version === st.baseVersion && d.header.index === st.index[st.axis] ? st.cache.adopt(d) : st.cache.load(st.axis, st.index[st.axis], st.baseVersion, { overlaysLater: true })),
    () => st.cache.load(st.axis, st.index[st.axis], st.baseVersion, { overlaysLater: true }),
  );
  firstLoad.then(() => perf.mark('first-slice'), () => undefined);
  const kept = await keptLoad;
  perf.mark('pending');
  if (kept && st.canEdit) {
    try {
      // one undoable step: Undo takes the restored edits back
      restoreSnapshot(st.editor, kept.snapshot);
      st.baseVersion = kept.baseVersion;
      ui.renderEdits();
      toast(`Restored ${st.editor.edits.size.toLocaleString()} unsaved voxel edits from ${new Date(kept.savedAt).toLocaleString()} (made on version ${kept.baseVersion}). Save to keep them; Undo takes them back.`);
    } catch (e) {
      toast(`Unsaved edits kept in this browser could not be restored: ${describeError(e)}`, 'error');
    }
  }
  try {
    const first = st.baseVersion === st.info.currentVersion ? await firstLoad : await st.cache.load(st.axis, st.index[st.axis], st.baseVersion, { overlaysLater: true });
    if (st.closed) return () => undefined;
    st.view.resize();
    slices.present(first);
    loading.remove();
    perf.record('first_paint', performance.now() - openedAt);
    perf.mark('first-paint');
  } catch (e) {
    mount(loading, h('p', {}, `The case could not be shown: ${describeError(e)}`));
  }
  ui.renderHeader();
  // what the first slice does not need is asked for once it is on screen (the server answers the
  // slice first): review progress, drafts, flagged regions, the neighbours of the slice
  void renderProgress(v);
  void v.drafts.refresh();
  if (st.is3d) st.cache.prefetch(st.axis, st.index[st.axis], st.baseVersion, slices.depth());
  if (st.canEdit && !st.info.claimedBy) {
    void api.claim(maskId).then(() => {
      st.claimed = true;
      lastBeat = performance.now();
    }, () => undefined);
  }
  if (st.overlayKinds.length) {
    void api.regions(maskId).then(
      (r) => {
        st.regions = r.regions;
        ui.renderRegions();
      },
      (e) => mount(ui.el.regions, h('li', { class: 'error-text' }, describeError(e))),
    );
  }

  // test and benchmark hooks (read-only views of the state)
  (window as unknown as { __viewer?: unknown }).__viewer = {
    maskId,
    get baseVersion() {
      return st.baseVersion;
    },
    get axis() {
      return st.axis;
    },
    get index() {
      return st.index[st.axis];
    },
    get editsSize() {
      return st.editor.edits.size;
    },
    get historyDepth() {
      return st.editor.history.depth;
    },
    get cachedSlices() {
      return st.cache.size;
    },
    get window() {
      return [...st.settings.window];
    },
    get tool() {
      return st.tool;
    },
    get overlaysShown() {
      return Object.keys(st.displayed?.overlays ?? {});
    },
    /** Client coordinates of a continuous slice position. */
    sliceToClient: (x: number, y: number) => st.view.toClient(x, y),
    clientToSlice: (x: number, y: number) => st.view.toSlice(x, y),
    brushRadius: () => edit.brushRadius(),
    gpu: gpuInfo(),
    showSlice: (a: Axis, i: number) => slices.showSlice(a, i),
    setLabel: (value: number) => edit.setLabel(value),
    setSphereMm: (mm: number) => ((st.sphereMm = mm), ui.renderHeader()),
    get layout() {
      return v.multi.kind;
    },
    /** The crosshair voxel (0-based i, j, k). */
    get crosshair() {
      return [st.index.x, st.index.y, st.index.z];
    },
    sideToClient: (a: Axis, x: number, y: number) => v.multi.sideToClient(a, x, y),
    sideShown: (a: Axis) => v.multi.shownIndex(a),
  };

  return () => {
    st.closed = true;
    removeKeys();
    offReach();
    clearInterval(timeTick);
    clearInterval(heartbeat);
    saver.dispose();
    slices.dispose();
    edit.dispose();
    v.multi.dispose();
    for (const [t, type, f] of listeners) t.removeEventListener(type, f);
    resizeObserver.disconnect();
    if (st.editor.edits.size) void saver.persist();
    if (st.claimed) void api.release(maskId).catch(() => undefined);
    st.cache.clear();
    delete (window as unknown as { __viewer?: unknown }).__viewer;
  };
}
