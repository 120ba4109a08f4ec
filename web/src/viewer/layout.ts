/**
 * The viewer's DOM: toolbar, canvas box, slice bar and side panel, built once per case, and the
 * functions that render the state into it (header, legend, unsaved edits, versions, regions).
 * Buttons call the controllers; nothing here changes the state.
 */
import { CT_PRESETS, windowLevel } from '../../../src/core/viewer/index.js';
import type { OverlayKind } from '../api.js';
import { ago, h, mount } from '../ui.js';
import { gpuInfo } from './gpu.js';
import { showHelp, type Shortcut } from './shortcuts.js';
import type { Tool, Viewer } from './state.js';

const TOOLS: { id: Tool; label: string; key: string; title: string; only3d?: boolean }[] = [
  { id: 'wl', label: 'W/L', key: 'Q', title: 'window / level: drag right for a wider window, down for a higher level' },
  { id: 'brush', label: 'Brush', key: 'B', title: 'paint the selected label along the mouse path' },
  { id: 'eraser', label: 'Eraser', key: 'E', title: 'erase (set to background) along the mouse path' },
  { id: 'threshold', label: 'Brush ≈', key: 'T', title: 'threshold brush: paint only pixels whose value is in the ≈ range (from the pixel where the stroke starts, or typed)' },
  { id: 'fill', label: 'Fill', key: 'F', title: 'flood-fill the clicked label region in this slice' },
  { id: 'bounded', label: 'Fill ≈', key: 'I', title: 'fill the connected pixels of similar intensity (range from the clicked pixel, editable)' },
  { id: 'fill-range', label: 'Fill ±N', key: 'G', title: 'flood-fill the clicked region through a range of slices', only3d: true },
  { id: 'sphere', label: 'Sphere', key: 'K', title: '3D sphere brush, radius in mm', only3d: true },
  { id: 'holes', label: 'Holes', key: 'H', title: 'fill the holes of the selected label in this slice' },
];

/** The viewer's elements and renderers. */
export class ViewerLayout {
  readonly el;
  readonly canvasBox: HTMLElement;
  readonly loading: HTMLElement;
  shortcuts: Shortcut[] = [];

  constructor(private readonly v: Viewer, root: HTMLElement, loading: HTMLElement) {
    const st = v.st;
    const info = st.info;
    this.loading = loading;
    const el = (this.el = {
      title: h('span', { class: 'case-title' }),
      version: h('span', { class: 'badge' }),
      status: h('span', { class: 'badge' }),
      progress: h('span', { class: 'muted', id: 'queue-progress' }),
      claimBanner: h('div', { class: 'claim-banner', id: 'claim-banner', hidden: true }),
      sliceLabel: h('span', { class: 'slice-label' }),
      cursorInfo: h('span', { class: 'cursor-info muted', id: 'cursor-info' }),
      zoomLabel: h('button', { class: 'zoom-label', id: 'zoom-fit', title: 'Zoom to fit (R)', onclick: () => v.slices.resetZoom() }),
      orient: { top: h('span', { class: 'orient top' }), bottom: h('span', { class: 'orient bottom' }), left: h('span', { class: 'orient left' }), right: h('span', { class: 'orient right' }) },
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
      undo: h('button', { title: 'Undo (Ctrl+Z)', onclick: () => v.edit.undo() }, '↶') as HTMLButtonElement,
      redo: h('button', { title: 'Redo (Ctrl+Shift+Z)', onclick: () => v.edit.redo() }, '↷') as HTMLButtonElement,
      save: h('button', { class: 'primary', id: 'save', title: 'Save (Ctrl+S)', onclick: () => void v.saver.save() }, 'Save') as HTMLButtonElement,
      saveNext: h('button', { id: 'save-next', title: 'Save and open the next case (Ctrl+Enter)', onclick: () => void v.saver.saveAndNext() }, 'Save & next') as HTMLButtonElement,
      accept: h('button', { class: 'ok', id: 'accept', title: 'Accept this mask (Shift+A)', onclick: () => void v.saver.review('accept') }, 'Accept') as HTMLButtonElement,
      reject: h('button', { class: 'danger', id: 'reject', title: 'Reject with a reason (Shift+R)', onclick: () => void v.saver.review('reject') }, 'Reject…') as HTMLButtonElement,
      toolButtons: new Map<Tool, HTMLButtonElement>(),
      axisButtons: new Map<string, HTMLButtonElement>(),
      layoutToggle: h('button', { class: 'layout-toggle', id: 'layout-toggle', title: 'One view / three views with a linked crosshair (V)', onclick: () => v.multi.setLayout(v.multi.kind === 3 ? 1 : 3) }) as HTMLButtonElement,
      crossTool: h('button', { class: 'tool', id: 'cross-tool', 'data-tool': 'cross', title: 'Crosshair: click or drag to move the crosshair and the slices of the other views (X)', onclick: () => v.edit.setTool('cross') }, 'Cross') as HTMLButtonElement,
      windowSel: h('select', { 'aria-label': 'window', title: 'Window preset (W cycles)' }) as HTMLSelectElement,
      windowText: h('input', { type: 'text', class: 'narrow wl-text', id: 'wl-text', 'aria-label': 'window / level', title: 'Type W/L (400/40) or a range (-100..300), Enter' }) as HTMLInputElement,
      size: h('input', { type: 'range', min: 1, max: 64, value: st.brushSize, 'aria-label': 'brush size', title: 'Brush size ([ and ])' }) as HTMLInputElement,
      sizeLabel: h('span', { class: 'muted' }),
      range: h('input', { type: 'number', min: 0, max: 200, value: st.fillRange, class: 'narrow', 'aria-label': 'fill range ± slices', title: 'slices each side for Fill ±N' }) as HTMLInputElement,
      rangeBox: null as unknown as HTMLElement,
      boundsBox: null as unknown as HTMLElement,
      bounds: h('input', { type: 'text', class: 'narrow', id: 'fill-bounds', 'aria-label': 'fill intensity range', placeholder: 'auto', title: 'Intensity range lo..hi of Fill ≈ and Brush ≈ (empty: from the clicked pixel)' }) as HTMLInputElement,
    });

    this.el.rangeBox = h('label', { class: 'small', hidden: true }, '±', el.range);
    this.el.boundsBox = h('label', { class: 'small', hidden: true }, '≈', el.bounds);
    for (const t of TOOLS) {
      if (t.only3d && !st.is3d) continue;
      el.toolButtons.set(t.id, h('button', { class: 'tool', 'data-tool': t.id, title: `${t.title} (${t.key})`, onclick: () => v.edit.setTool(t.id) }, t.label) as HTMLButtonElement);
    }
    for (const [a, name] of [['z', 'Axial'], ['y', 'Coronal'], ['x', 'Sagittal']] as ['x' | 'y' | 'z', string][]) {
      el.axisButtons.set(a, h('button', { class: 'axis', 'data-axis': a, title: `${name} (${name[0]})`, onclick: () => v.slices.setAxis(a) }, name) as HTMLButtonElement);
    }
    if (info.modality === 'ct') for (const p of CT_PRESETS) el.windowSel.append(h('option', { value: p.id }, `${p.label} W${p.width} L${p.level}`));
    el.windowSel.append(h('option', { value: 'auto' }, `Auto ${Math.round(info.window[0])}…${Math.round(info.window[1])}`));
    el.windowSel.append(h('option', { value: 'custom', hidden: true }, 'Custom'));
    el.windowSel.value = info.modality === 'ct' ? 'abdomen' : 'auto';
    el.windowSel.addEventListener('change', () => v.slices.setWindow(el.windowSel.value));
    el.windowText.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') v.slices.typedWindow(el.windowText.value);
    });
    el.size.addEventListener('input', () => v.edit.setBrush(Number(el.size.value)));
    el.range.addEventListener('change', () => (st.fillRange = Math.max(0, Math.min(200, Number(el.range.value) || 0))));
    el.bounds.addEventListener('change', () => v.edit.setFillBounds(el.bounds.value));

    const s = st.settings;
    const overlayControls = h('div', { class: 'overlay-controls' },
      row('Labels', check(s.showLabels, (x) => ((s.showLabels = x), v.slices.redraw()), 'toggle-labels'), slider(s.labelOpacity, (x) => ((s.labelOpacity = x), v.slices.redraw()), 'label opacity'), h('label', { class: 'small' }, check(s.outline, (x) => ((s.outline = x), v.slices.redraw()), 'toggle-outline'), 'outline')),
      st.overlayKinds.length
        ? row('Heat map', check(s.showHeat, (x) => ((s.showHeat = x), v.slices.redraw()), 'toggle-heat'), slider(s.heatOpacity, (x) => ((s.heatOpacity = x), v.slices.redraw()), 'heat opacity'), (() => {
            const sel = h('select', { 'aria-label': 'heat map kind' }, st.overlayKinds.map((k) => h('option', { value: k }, k))) as HTMLSelectElement;
            sel.value = s.heatKind ?? '';
            sel.addEventListener('change', () => ((s.heatKind = sel.value as OverlayKind), v.slices.redraw()));
            return sel;
          })())
        : h('p', { class: 'muted' }, 'No heat map for this case.'),
    );

    const toolbar = h('header', { class: `vbar ${st.is3d ? 'vbar-3d' : 'vbar-2d'}` },
      h('button', { onclick: () => void v.saver.leave(), title: 'Back to the queue (Esc)' }, '← Queue'),
      el.title, el.version, el.status,
      h('span', { class: 'sep' }),
      st.is3d ? h('span', { class: 'group' }, [...el.axisButtons.values()], el.layoutToggle, el.crossTool) : null,
      st.is3d && gpuInfo().offer3d ? h('button', { class: 'btn-3d', title: `3D / multiplanar view with NiiVue (WebGL2: ${gpuInfo().renderer})`, onclick: () => void import('./view3d.js').then((m) => m.open3d({ imageId: info.imageId, maskId: st.maskId, version: st.baseVersion, window: s.window, legend: st.legend, unsaved: st.editor.edits.size })) }, '3D') : null,
      st.canEdit
        ? h('span', { class: 'group tools' }, [...el.toolButtons.values()], h('label', { class: 'small' }, el.size, el.sizeLabel), st.is3d ? el.rangeBox : null, el.boundsBox, st.is3d ? h('button', { id: 'interpolate', title: 'Fill between slices: interpolate the selected label between the two nearest edited slices around this one (Shift+I)', onclick: () => void v.edit.interpolate() }, '⇕') : null, el.undo, el.redo)
        : h('span', { class: 'readonly' }, `Read-only (${st.api.user?.role ?? 'no'} role)`),
      h('span', { class: 'grow' }),
      st.canEdit ? [el.save, el.saveNext] : null,
      st.canReview ? [el.accept, el.reject] : null,
      h('button', { onclick: () => showHelp(this.shortcuts), title: 'Keyboard shortcuts (?)' }, '?'),
    );
    this.canvasBox = h('div', { class: 'canvas-box' }, st.view.canvas, el.orient.top, el.orient.bottom, el.orient.left, el.orient.right, el.cursor, el.marker, el.sliceLoading);
    const side = h('aside', { class: 'side' },
      h('section', {}, h('h3', {}, 'Labels'), el.legend, st.canEdit ? h('label', { class: 'small keep-others', title: 'tools do not paint over other labels' }, check(st.keepOthers, (x) => (st.keepOthers = x), 'keep-others'), ' keep other labels') : null),
      h('section', {}, h('h3', {}, 'Overlays'), overlayControls),
      h('section', {}, h('h3', {}, 'Flagged regions'), el.regions),
      h('section', {}, h('h3', {}, 'Unsaved edits'), el.edits, el.time),
      h('section', {}, h('h3', {}, 'Versions'), el.versions),
      el.draftsSection,
    );
    mount(el.draftsSection, h('h3', {}, 'Drafts'), el.drafts);
    v.multi.mount(this.canvasBox);
    mount(root, h('div', { class: 'viewer' }, toolbar, el.claimBanner, h('div', { class: 'viewer-main' }, h('div', { class: 'stage' }, v.multi.grid, h('div', { class: 'slice-bar' }, st.is3d ? el.slider : null, el.sliceLabel, h('label', { class: 'group window-group', title: 'Window: preset, or type width/level and Enter' }, 'W/L ', el.windowSel, el.windowText), el.cursorInfo, h('span', { class: 'grow' }), el.progress, el.zoomLabel), loading), side)));
  }

  renderHeader(): void {
    const { st } = this.v;
    const el = this.el;
    const info = st.info;
    el.title.textContent = `${info.imageName} · ${info.target}`;
    el.title.title = `priority ${info.priority.toFixed(3)}${info.decision ? ` · model decision ${info.decision}` : ''}`;
    el.version.textContent = `v${st.baseVersion}${st.baseVersion !== info.currentVersion ? ` (server v${info.currentVersion})` : ''}`;
    el.status.textContent = info.status;
    el.status.className = `badge status-${info.status}`;
    for (const [t, b] of el.toolButtons) b.classList.toggle('active', t === st.tool);
    for (const [a, b] of el.axisButtons) b.classList.toggle('active', a === st.axis);
    el.crossTool.classList.toggle('active', st.tool === 'cross');
    el.layoutToggle.textContent = this.v.multi.kind === 3 ? '1 view' : '3 views';
    el.sizeLabel.textContent = st.tool === 'sphere' ? `${st.sphereMm} mm` : `${st.brushSize}px`;
    el.rangeBox.hidden = st.tool !== 'fill-range';
    el.boundsBox.hidden = st.tool !== 'bounded' && st.tool !== 'threshold';
    const wl = windowLevel(st.settings.window);
    if (document.activeElement !== el.windowText) el.windowText.value = `${+wl.width.toFixed(1)}/${+wl.level.toFixed(1)}`;
  }

  renderLegend(): void {
    const { st } = this.v;
    mount(this.el.legend, st.legend.map((e, i) => {
      const pick = h('button', { class: `legend-item ${e.value === st.label ? 'active' : ''}`, 'data-label': e.value, title: `select ${e.name}${i < 9 ? ` (${i + 1})` : ''}`, onclick: () => this.v.edit.setLabel(e.value) },
        h('span', { class: 'swatch', style: `background: rgb(${e.color.join(',')})` }), `${i < 9 ? `${i + 1} ` : ''}${e.name}`, st.info.labels.includes(e.value) ? null : h('span', { class: 'muted' }, ' (none)'));
      if (!st.canEdit) pick.setAttribute('disabled', '');
      const eye = h('button', { class: `legend-eye ${st.hidden.has(e.value) ? 'off' : ''}`, 'data-hide': e.value, title: `${st.hidden.has(e.value) ? 'show' : 'hide'} ${e.name}`, 'aria-label': `show or hide ${e.name}`, onclick: () => this.v.edit.toggleHidden(e.value) }, st.hidden.has(e.value) ? '◌' : '◉');
      const lock = h('button', { class: `legend-lock ${st.locked.has(e.value) ? 'on' : ''}`, 'data-lock': e.value, title: `${st.locked.has(e.value) ? 'unlock' : 'lock'} ${e.name} (locked labels are never painted over)`, 'aria-label': `lock ${e.name}`, onclick: () => this.v.edit.toggleLocked(e.value) }, st.locked.has(e.value) ? 'locked' : 'lock');
      return h('div', { class: 'legend-row' }, pick, eye, st.canEdit ? lock : null);
    }));
  }

  renderEdits(): void {
    const { st } = this.v;
    const el = this.el;
    const n = st.editor.edits.size;
    el.edits.textContent = n ? `${n.toLocaleString()} voxels changed in ${st.editor.edits.editedPlanes().length} slice(s); ${st.editor.history.depth} undo step(s)` : 'none';
    el.edits.classList.toggle('dirty', n > 0);
    el.undo.disabled = !st.editor.history.canUndo;
    el.redo.disabled = !st.editor.history.canRedo;
    el.save.disabled = st.saving || n === 0;
    el.save.textContent = st.saving ? 'Saving…' : n ? 'Save' : 'Saved';
  }

  renderVersions(): void {
    const { st } = this.v;
    mount(this.el.versions, st.info.versions.map((x) => h('li', { class: x.version === st.baseVersion ? 'current' : '', 'data-version': x.version }, `v${x.version} · ${x.origin}${x.author ? ` · ${x.author}` : ''} · ${ago(x.createdAt)}`)));
  }

  renderRegions(): void {
    const { st } = this.v;
    if (!st.regions.length) return mount(this.el.regions, h('li', { class: 'muted' }, st.overlayKinds.length ? 'No flagged regions above the threshold.' : 'No attention map for this case.'));
    // slice numbers are 1-based everywhere on screen
    mount(this.el.regions, st.regions.map((r, i) => h('li', {}, h('button', { class: `region ${i === st.regionCursor ? 'active' : ''}`, 'data-rank': r.rank, onclick: () => this.v.slices.jumpToRegion(i) }, `#${r.rank} · ${r.voxels.toLocaleString()} vox · peak ${r.peak.toFixed(2)}${st.is3d ? ` · axial ${r.peakAt[2] + 1}` : ''}`))));
  }
}

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
