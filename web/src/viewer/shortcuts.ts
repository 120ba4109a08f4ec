/**
 * Keyboard shortcuts of the viewer: one table drives both the key handling and the help overlay,
 * so the overlay always lists what the keys do.
 */
import { dialog, h } from '../ui.js';

/** One shortcut. */
export interface Shortcut {
  /** What is shown, e.g. "Ctrl+Z". */
  keys: string;
  what: string;
  /** Matches a key event. */
  match(e: KeyboardEvent): boolean;
  run(e: KeyboardEvent): void;
  group: 'Navigate' | 'Edit' | 'Display' | 'Case';
}

const mod = (e: KeyboardEvent) => e.ctrlKey || e.metaKey;

/** Helpers to build matchers. */
export const key = {
  plain: (k: string) => (e: KeyboardEvent) => !mod(e) && !e.altKey && e.key.toLowerCase() === k.toLowerCase() && (k.length > 1 || e.shiftKey === (k !== k.toLowerCase())),
  exact: (k: string) => (e: KeyboardEvent) => !mod(e) && !e.altKey && e.key === k,
  ctrl: (k: string, shift = false) => (e: KeyboardEvent) => mod(e) && e.shiftKey === shift && e.key.toLowerCase() === k.toLowerCase(),
};

/** Install a table; returns the remover. Keys typed into inputs are left alone. */
export function installShortcuts(table: Shortcut[]): () => void {
  const onKey = (e: KeyboardEvent) => {
    const t = e.target as HTMLElement | null;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
    if (document.querySelector('.backdrop')) return; // a dialog is open
    for (const s of table) {
      if (s.match(e)) {
        e.preventDefault();
        s.run(e);
        return;
      }
    }
  };
  document.addEventListener('keydown', onKey);
  return () => document.removeEventListener('keydown', onKey);
}

/** The help overlay listing every shortcut by group. */
export function showHelp(table: Shortcut[]): void {
  const groups = ['Navigate', 'Edit', 'Display', 'Case'] as const;
  const body = h(
    'div',
    { class: 'help-grid' },
    groups.map((g) =>
      h('section', {}, h('h3', {}, g), h('table', {}, table.filter((s) => s.group === g).map((s) => h('tr', {}, h('td', {}, h('kbd', {}, s.keys)), h('td', {}, s.what))))),
    ),
    h('p', { class: 'muted' }, 'Mouse: left button paints with the current tool; wheel changes slice; Ctrl+wheel zooms; right or middle button drags to pan.'),
  );
  void dialog('Keyboard shortcuts', body, [{ label: 'Close', value: () => true, primary: true }], { wide: true, className: 'help' });
}
