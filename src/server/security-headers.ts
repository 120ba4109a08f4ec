/**
 * Security headers on every response (after OWASP's HTTP Headers Cheat Sheet; what @fastify/helmet
 * sets, written out here because that plugin is not among the installed dependencies):
 * a Content-Security-Policy that allows only the server's own scripts, styles and API (the review
 * UI has no inline script or style attribute — checked by the e2e tests, which load it under this
 * policy), framing forbidden, no MIME sniffing, no referrer, isolated browsing context, and HSTS
 * when the server is told it runs behind HTTPS (`secureCookies`). The OpenAPI page at /docs
 * (swagger-ui) needs inline styles and data: images, so it gets a policy relaxed for those only.
 * @module
 */
import type { FastifyInstance } from 'fastify';

/** The policy of the review UI and the API. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The policy of /docs (swagger-ui: inline styles, data: images, its own scripts). */
const DOCS_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'");

/**
 * Add the security headers to every response of `app`.
 * @param opts - `hsts`: also send Strict-Transport-Security (only behind HTTPS)
 * @example
 * installSecurityHeaders(app, { hsts: settings.secureCookies });
 */
export function installSecurityHeaders(app: FastifyInstance, opts: { hsts: boolean }): void {
  app.addHook('onSend', async (req, reply, payload) => {
    const docs = req.url === '/docs' || req.url.startsWith('/docs/');
    void reply.header('content-security-policy', docs ? DOCS_POLICY : CONTENT_SECURITY_POLICY);
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('x-frame-options', 'DENY');
    void reply.header('referrer-policy', 'no-referrer');
    void reply.header('cross-origin-opener-policy', 'same-origin');
    void reply.header('cross-origin-resource-policy', 'same-origin');
    void reply.header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=()');
    if (opts.hsts) void reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains');
    return payload;
  });
}
