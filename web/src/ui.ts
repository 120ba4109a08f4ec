/** Small DOM helpers: element builder, dialogs, toasts. No framework: the UI is a few pages. */

type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;
type Child = Node | string | number | null | undefined | false;

/**
 * Create an element: attributes (on* become listeners; booleans toggle), then children.
 * @example
 * h('button', { class: 'primary', onclick: save }, 'Save')
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

/** Replace an element's children. */
export function mount(parent: Element, ...children: (Child | Child[])[]): void {
  parent.replaceChildren(...(children.flat().filter((c) => c !== null && c !== undefined && c !== false) as (Node | string)[]).map((c) => (typeof c === 'number' ? String(c) : c)));
}

let toastBox: HTMLElement | undefined;

/** A short message at the bottom right; errors stay longer. */
export function toast(text: string, kind: 'info' | 'error' | 'ok' = 'info', ms = kind === 'error' ? 8000 : 3000): void {
  if (!toastBox) {
    toastBox = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastBox);
  }
  const t = h('div', { class: `toast ${kind}` }, text);
  toastBox.append(t);
  setTimeout(() => t.remove(), ms);
}

/** A modal dialog; resolves with what a button returned, or null on Escape. */
export function dialog<T>(title: string, body: Node | string, buttons: { label: string; value: () => T | Promise<T> | undefined; primary?: boolean; danger?: boolean; id?: string }[], opts: { wide?: boolean; className?: string } = {}): Promise<T | null> {
  return new Promise((resolve) => {
    const close = (v: T | null) => {
      document.removeEventListener('keydown', onKey, true);
      back.remove();
      resolve(v);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        close(null);
      }
    };
    const bar = h('div', { class: 'dialog-buttons' });
    for (const b of buttons) {
      const btn = h('button', { class: b.primary ? 'primary' : b.danger ? 'danger' : '', id: b.id }, b.label);
      btn.addEventListener('click', async () => {
        const v = await b.value();
        if (v !== undefined) close(v);
      });
      bar.append(btn);
    }
    const box = h('div', { class: `dialog ${opts.wide ? 'wide' : ''} ${opts.className ?? ''}`, role: 'dialog', 'aria-modal': 'true', 'aria-label': title }, h('h2', {}, title), typeof body === 'string' ? h('p', {}, body) : body, bar);
    const back = h('div', { class: 'backdrop' }, box);
    document.body.append(back);
    document.addEventListener('keydown', onKey, true);
    (box.querySelector('textarea, input, button.primary') as HTMLElement | null)?.focus();
  });
}

/** Format a duration in ms as "1 min 5 s". */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** "3 min ago" style time. */
export function ago(iso: string | null): string {
  if (!iso) return '';
  const d = (Date.now() - Date.parse(iso)) / 1000;
  if (d < 60) return 'just now';
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}
