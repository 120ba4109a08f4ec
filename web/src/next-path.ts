/**
 * Where to go after logging in: the page the browser asked for before it was sent to the login
 * page (`/?next=/docs#/login`), only when it is a path of this same site. Anything else — another
 * host (`//evil.example`, `https://…`), a backslash trick (`/\evil.example`), a scheme
 * (`javascript:`), control characters — is refused, so the login page cannot be made an open
 * redirect (OWASP "Unvalidated Redirects and Forwards").
 */

/**
 * The same-origin path (with query and fragment) to open after login, or null.
 * @param raw - the `next` query parameter as received
 * @param origin - this page's origin, e.g. `https://medmask.example:8080`
 * @example
 * safeNextPath('/docs', 'http://127.0.0.1:8080'); // '/docs'
 * safeNextPath('//evil.example/x', 'http://127.0.0.1:8080'); // null
 */
export function safeNextPath(raw: string | null | undefined, origin: string): string | null {
  if (!raw || raw.length > 2048) return null;
  // relative paths only: one leading slash, no second slash or backslash after it (protocol-relative)
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return null;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) return null;
  let u: URL;
  try {
    u = new URL(raw, origin);
  } catch {
    return null;
  }
  if (u.origin !== new URL(origin).origin) return null;
  const path = `${u.pathname}${u.search}${u.hash}`;
  // the review UI itself: the hash router takes it from here
  if (u.pathname === '/' && !u.search) return null;
  return path;
}
