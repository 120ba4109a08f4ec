/**
 * Saving a case: compact per-plane diffs on the version being edited, retried with back-off while
 * the server is unreachable, the edits kept in the browser (IndexedDB) until a save succeeds; a
 * stale version (409) opens the comparison dialog whose default is the safe action (re-apply my
 * strokes on theirs; nothing of theirs is overwritten without a deliberate click). Also accept /
 * reject and leaving the case, which save first.
 */
import { flipRows, labelsAfterRuns, pixelAspect } from '../../../src/core/viewer/index.js';
import { ApiError, describeError, type ConflictDetails } from '../api.js';
import { deletePending, putPending } from '../pending.js';
import { perf } from '../perf.js';
import { ago, dialog, duration, h, toast } from '../ui.js';
import { axisName } from './navigation.js';
import { SliceView } from './slice-view.js';
import type { Viewer } from './state.js';

/** The save-and-conflict controller. */
export class SaveController {
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryDelay = 2000;
  private persistTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly v: Viewer) {}

  /** Whether a retry is waiting (the server was unreachable). */
  get retrying(): boolean {
    return this.retryTimer !== undefined;
  }

  schedulePersist(): void {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => void this.persist(), 300);
  }
  /** Keep the unsaved edits in this browser (or forget them when there are none). */
  async persist(): Promise<void> {
    const { st } = this.v;
    if (st.editor.edits.size) await putPending({ maskId: st.maskId, baseVersion: st.baseVersion, username: st.api.user?.username ?? '', savedAt: Date.now(), snapshot: st.editor.edits.snapshot() });
    else await deletePending(st.maskId);
  }

  /** Reload the version list from the server (all of it, after a conflict or a save). */
  async refreshVersions(): Promise<void> {
    const { st, ui } = this.v;
    try {
      const fresh = await st.api.caseInfo(st.maskId);
      st.info.versions = fresh.versions;
      st.info.currentVersion = fresh.currentVersion;
    } catch {
      return; // the list is informative; the case works without it
    }
    if (!st.closed) {
      ui.renderVersions();
      ui.renderHeader();
    }
  }

  async save(opts: { onto?: number; quiet?: boolean } = {}): Promise<boolean> {
    const { st, ui } = this.v;
    if (!st.canEdit) return false;
    if (st.editor.inStep) this.v.edit.afterStep(null);
    if (!st.editor.edits.size) return true;
    if (st.saving) return false;
    st.saving = true;
    ui.renderEdits();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const planes = st.editor.edits.toPlaneRuns();
    const t0 = performance.now();
    try {
      const r = await st.api.saveEdits(st.maskId, { baseVersion: st.baseVersion, ...(opts.onto !== undefined ? { onto: opts.onto } : {}), planes });
      perf.record('save', performance.now() - t0);
      const old = st.baseVersion;
      const edits = st.editor.edits;
      st.cache.rekey(old, r.version, (s) => {
        const l = s.labels.slice();
        edits.applyToSlice(s.axis, s.index, l);
        return l;
      });
      st.baseVersion = r.version;
      st.info.currentVersion = r.version;
      st.info.status = 'open';
      st.info.versions.unshift({ version: r.version, origin: 'human', author: st.api.user?.username ?? null, note: null, createdAt: new Date().toISOString() });
      st.info.labels = labelsAfterRuns(st.info.labels, planes);
      st.editor.reset();
      this.retryDelay = 2000;
      await deletePending(st.maskId);
      if (!opts.quiet) toast(`Saved as version ${r.version} (${r.changed.toLocaleString()} voxels changed).`, 'ok');
      if (st.displayed) st.displayed = st.cache.get(st.displayed.axis, st.displayed.index, st.baseVersion) ?? st.displayed;
      ui.renderHeader();
      ui.renderVersions();
      if (opts.onto !== undefined) void this.refreshVersions();
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === 'CONFLICT' && e.details) {
        st.saving = false;
        ui.renderEdits();
        void this.v.drafts.refresh();
        return this.conflict(e.details as unknown as ConflictDetails);
      }
      await this.persist();
      if (e instanceof ApiError && (e.network || e.status >= 500)) {
        toast(`Not saved: ${describeError(e)} Retrying in ${Math.round(this.retryDelay / 1000)} s.`, 'error');
        this.retryTimer = setTimeout(() => void this.save({ quiet: false }), this.retryDelay);
        this.retryDelay = Math.min(this.retryDelay * 2, 60_000);
      } else toast(`Not saved: ${describeError(e)}`, 'error');
      return false;
    } finally {
      st.saving = false;
      ui.renderEdits();
    }
  }

  /** Retry now (the server is reachable again). */
  retryNow(): void {
    const { st } = this.v;
    if (st.editor.edits.size && !st.saving && this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      void this.save();
    }
  }

  private async conflict(d: ConflictDetails): Promise<boolean> {
    const { st, ui, slices } = this.v;
    const theirs = d.currentVersion;
    st.info.currentVersion = theirs;
    ui.renderHeader();
    void this.refreshVersions();
    const a = st.displayed?.axis ?? st.axis;
    const i = st.displayed?.index ?? st.index[st.axis];
    const mine = new SliceView({ ...st.settings, zoom: 1, pan: [0, 0] }, () => st.visibleLut(), false);
    const other = new SliceView({ ...st.settings, zoom: 1, pan: [0, 0] }, () => st.visibleLut(), false);
    const who = d.current ? `${d.current.author ?? 'a model'} ${ago(d.current.createdAt)}` : 'someone';
    const body = h('div', { class: 'conflict' },
      h('p', {}, `Version ${theirs} was saved by ${who} while you were editing version ${st.baseVersion}. Your edit is not lost: the server kept it as a draft, and this browser keeps your ${st.editor.edits.size.toLocaleString()} changed voxels.`),
      h('div', { class: 'compare' }, h('figure', {}, h('div', { class: 'cmp-box', id: 'theirs' }, other.canvas), h('figcaption', {}, `Theirs: version ${theirs}`)), h('figure', {}, h('div', { class: 'cmp-box', id: 'mine' }, mine.canvas), h('figcaption', {}, `Yours: version ${st.baseVersion} + your edits`))),
      h('p', { class: 'muted' }, `${axisName(a)} slice ${i + 1}. Re-apply (safe, the default): load theirs and put your strokes on top, then check and save. Decide later: keep your edits unsaved. Take theirs: drop your edits. Keep mine: your version replaces theirs.`),
    );
    const p = dialog<'mine' | 'theirs' | 'reapply' | 'later'>(`Conflict: version ${theirs} is newer`, body, [
      { label: 'Re-apply my strokes on theirs', value: () => 'reapply', primary: true, id: 'reapply' },
      { label: 'Decide later', value: () => 'later', id: 'later' },
      { label: 'Take theirs', value: () => 'theirs', id: 'take-theirs' },
      { label: 'Keep mine (overwrite theirs)', value: () => 'mine', danger: true, id: 'keep-mine' },
    ], { wide: true });
    void (async () => {
      try {
        const [t, m] = await Promise.all([st.cache.load(a, i, theirs), st.cache.load(a, i, st.baseVersion)]);
        const asp = pixelAspect(st.info.spacing, a), flip = flipRows(st.info.direction, a);
        other.show({ width: t.width, height: t.height, image: t.image, labels: t.labels, overlays: t.overlays, aspect: asp, flipY: flip });
        mine.show({ width: m.width, height: m.height, image: m.image, labels: slices.labelsFor(m), overlays: m.overlays, aspect: asp, flipY: flip });
      } catch (e) {
        toast(`Could not load the comparison: ${describeError(e)}`, 'error');
      }
    })();
    const choice = await p;
    if (choice === 'mine') return this.save({ onto: theirs });
    if (choice === 'theirs') {
      st.editor.reset();
      await deletePending(st.maskId);
      st.baseVersion = theirs;
      ui.renderEdits();
      ui.renderVersions();
      await slices.showSlice(st.axis, st.index[st.axis]);
      toast(`Now on version ${theirs}; your edit stays on the server as a draft.`);
      return false;
    }
    if (choice === 'reapply') {
      st.baseVersion = theirs;
      await this.persist();
      ui.renderVersions();
      await slices.showSlice(st.axis, st.index[st.axis]);
      toast(`Your strokes are now on version ${theirs}. Check them and save.`);
      return false;
    }
    return false;
  }

  async saveAndNext(): Promise<void> {
    if (!(await this.save())) return;
    await this.goNext();
  }
  async goNext(): Promise<void> {
    const { st, nav } = this.v;
    if (!(await nav.next(st.maskId))) toast('No other open case in the queue.');
  }

  async review(decision: 'accept' | 'reject'): Promise<void> {
    const { st, ui } = this.v;
    if (!st.canReview) return;
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
    if (st.editor.edits.size && !(await this.save({ quiet: true }))) return;
    try {
      await st.api.review(st.maskId, { decision, version: st.baseVersion, ...(reason ? { reason } : {}), timeSpentMs: st.timer.elapsedMs() });
      st.info.status = decision === 'accept' ? 'accepted' : 'rejected';
      ui.renderHeader();
      toast(`${decision === 'accept' ? 'Accepted' : 'Rejected'} version ${st.baseVersion} after ${duration(st.timer.elapsedMs())}.`, 'ok');
      st.claimed = false;
      await this.goNext();
    } catch (e) {
      toast(`Not recorded: ${describeError(e)}`, 'error');
    }
  }

  async leave(): Promise<void> {
    const { st, nav } = this.v;
    if (st.editor.inStep) this.v.edit.afterStep(null);
    if (st.editor.edits.size) await this.persist();
    nav.toQueue();
  }

  dispose(): void {
    clearTimeout(this.retryTimer);
    clearTimeout(this.persistTimer);
  }
}
