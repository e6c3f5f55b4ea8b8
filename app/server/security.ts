// Pure checks for the local web mode (and the CSP string the Electron window shares).
//
// Threats handled (DESIGN.md "Renderer API": loopback + random token):
// - another user or machine on the network: we bind loopback only;
// - a web page in the user's browser POSTing to localhost (CSRF): token + Origin check +
//   JSON content type;
// - DNS rebinding (evil.example resolving to 127.0.0.1): Host header must be a loopback
//   name with our port.

import { randomBytes, timingSafeEqual } from 'node:crypto';

/** Host names the server may bind to. Anything else is refused. */
export const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '::1'] as const;
export type LoopbackHost = (typeof LOOPBACK_HOSTS)[number];

export function isLoopbackHost(host: string): host is LoopbackHost {
  return (LOOPBACK_HOSTS as readonly string[]).includes(host);
}

/** A fresh random token: 32 bytes, base64url (43 characters, URL-safe). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time token comparison; false for missing or differently sized values. */
export function tokenMatches(expected: string, given: string | null | undefined): boolean {
  if (typeof given !== 'string' || given.length === 0) return false;
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(given, 'utf8');
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** The `host:port` forms a browser may send for a server listening on loopback `port`. */
export function allowedHostHeaders(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
}

/**
 * True when the Host header names this loopback server. A DNS-rebinding page sends its
 * own host name here, so it is refused.
 *
 * @example hostAllowed('127.0.0.1:7860', 7860) === true; hostAllowed('evil.test:7860', 7860) === false
 */
export function hostAllowed(hostHeader: string | undefined, port: number): boolean {
  if (!hostHeader) return false;
  return allowedHostHeaders(port).has(hostHeader.toLowerCase());
}

/**
 * True when the request's Origin is absent (same-origin navigation, curl, EventSource in
 * some browsers) or is this server itself. `null` (sandboxed frames, file://) is refused.
 */
export function originAllowed(origin: string | undefined, port: number): boolean {
  if (origin === undefined) return true;
  for (const host of allowedHostHeaders(port)) {
    if (origin.toLowerCase() === `http://${host}`) return true;
  }
  return false;
}

/**
 * Content-Security-Policy for the renderer. Scripts only from our own origin, no eval,
 * no plugins, no framing, no form posts, network only to our own origin.
 * `extraImg` adds image sources (Electron: the `duoscale-img:` scheme).
 * Inline styles are allowed because Svelte writes style attributes (`style:--split`).
 */
export function contentSecurityPolicy(extraImg: string[] = []): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    ['img-src', "'self'", 'data:', 'blob:', ...extraImg].join(' '),
    "font-src 'self'",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers sent with every response of the web mode. */
export function securityHeaders(): Record<string, string> {
  return {
    'content-security-policy': contentSecurityPolicy(),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  };
}
