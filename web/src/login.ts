/** The login page. */
import { ApiError, describeError, type Api, type User } from './api.js';
import { h, mount } from './ui.js';

/** Show the login form; resolves when logged in. */
export function showLogin(root: HTMLElement, api: Api, message?: string): Promise<User> {
  return new Promise((resolve) => {
    const user = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autofocus: true }) as HTMLInputElement;
    const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }) as HTMLInputElement;
    const err = h('p', { class: 'error-text', role: 'alert' }, message ?? '');
    const btn = h('button', { class: 'primary', type: 'submit', id: 'login' }, 'Log in') as HTMLButtonElement;
    const form = h('form', { class: 'login' },
      h('h1', {}, 'medmask'),
      h('p', { class: 'muted' }, 'Review and correct the masks the models are unsure about.'),
      h('label', { for: 'username' }, 'User name'), user,
      h('label', { for: 'password' }, 'Password'), pass,
      btn, err,
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      btn.disabled = true;
      btn.textContent = 'Logging in…';
      err.textContent = '';
      try {
        resolve(await api.login(user.value.trim(), pass.value));
      } catch (x) {
        err.textContent = x instanceof ApiError && x.status === 401 ? 'Wrong user name or password.' : describeError(x);
        pass.select();
      } finally {
        btn.disabled = false;
        btn.textContent = 'Log in';
      }
    });
    mount(root, h('div', { class: 'login-page' }, form));
    user.focus();
  });
}
