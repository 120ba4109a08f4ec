/**
 * The case's drafts (refused stale saves, model candidates kept after a person's work): listed in
 * the side panel and loadable into the editor as unsaved edits on the version being edited, in
 * one undoable step (`loadLabelsAsEdits` in src/core/viewer/restore.ts).
 */
import { loadLabelsAsEdits } from '../../../src/core/viewer/index.js';
import { describeError, type Draft } from '../api.js';
import { ago, dialog, h, mount, toast } from '../ui.js';
import type { Viewer } from './state.js';

/** The drafts controller. */
export class DraftsController {
  constructor(private readonly v: Viewer) {}

  render(): void {
    const { st, ui } = this.v;
    ui.el.draftsSection.hidden = st.drafts.length === 0;
    // newest first, like the versions
    mount(ui.el.drafts, [...st.drafts].reverse().map((d) => {
      const who = d.author ?? 'model job';
      const on = `on v${d.baseVersion}${d.currentVersionAtSave !== d.baseVersion ? ` (v${d.currentVersionAtSave} was current)` : ''}`;
      return h('li', { class: 'draft', 'data-draft': d.id },
        h('div', {}, `${who} · ${ago(d.createdAt)} · ${on}`),
        d.note ? h('div', { class: 'draft-note' }, d.note) : null,
        st.canEdit ? h('button', { class: 'load-draft', 'data-draft': d.id, title: `Replace the labels in the editor with this draft, as unsaved edits on v${st.baseVersion}`, 'aria-label': `Load into editor: draft by ${who} ${on}`, disabled: st.loadingDraft, onclick: () => void this.load(d) }, 'Load into editor') : null);
    }));
  }

  async refresh(): Promise<void> {
    const { st } = this.v;
    try {
      st.drafts = await st.api.drafts(st.maskId);
    } catch {
      return; // the list is an extra: the case works without it
    }
    if (!st.closed) this.render();
  }

  /**
   * Put a draft's labels into the editor: every voxel where the draft differs from what is shown
   * (the version being edited plus unsaved edits) becomes an unsaved edit, in one undoable step;
   * Save then makes a new version on top of the version being edited.
   */
  async load(d: Draft): Promise<void> {
    const { st, ui, edit } = this.v;
    if (!st.canEdit || st.saving || st.loadingDraft) return;
    if (st.editor.inStep) edit.afterStep(null);
    if (st.editor.edits.size) {
      const ok = await dialog<boolean>('Load the draft into the editor?', `Your ${st.editor.edits.size.toLocaleString()} unsaved voxel edits will be replaced by the draft's labels (Undo brings them back).`, [
        { label: 'Load the draft', value: () => true, primary: true, id: 'confirm-load-draft' },
        { label: 'Cancel', value: () => false },
      ]);
      if (!ok || st.closed) return;
    }
    st.loadingDraft = true;
    this.render();
    ui.el.sliceLoading.hidden = false;
    const onto = st.baseVersion;
    try {
      const [draft, base] = await Promise.all([st.api.draftLabels(st.maskId, d.id), st.api.labelPlanes(st.maskId, 'z', 0, st.shape[2] - 1, onto)]);
      if (st.closed) return;
      if (onto !== st.baseVersion || st.saving) throw new Error('the case changed while the draft was loading; try again');
      if (draft.length !== base.length) throw new Error(`the draft holds ${draft.length.toLocaleString()} voxels, the case ${base.length.toLocaleString()}`);
      if (st.editor.inStep) edit.afterStep(null);
      const c = loadLabelsAsEdits(st.editor, base, draft, `load draft ${d.id}`);
      if (!c) {
        toast('The draft holds the same labels as the editor: nothing to load.');
        return;
      }
      if (st.displayed && st.displayLabels) {
        st.displayLabels.set(this.v.slices.labelsFor(st.displayed));
        st.view.recompose(null);
      }
      ui.renderEdits();
      this.v.saver.schedulePersist();
      toast(`Draft loaded: ${c.voxels.length.toLocaleString()} voxels differ from what was shown. Check, then save (Undo reverts).`, 'ok');
    } catch (e) {
      toast(`The draft could not be loaded: ${describeError(e)}`, 'error');
    } finally {
      st.loadingDraft = false;
      ui.el.sliceLoading.hidden = true;
      this.render();
    }
  }
}
