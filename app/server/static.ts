// Static files of the built renderer (dist/renderer) for the web mode.
// Only files inside the root (after resolving symlinks) are served; anything else is a 404.

import { promises as fs } from 'node:fs';
import path from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.gif': 'image/gif',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

/** MIME type by file extension; `application/octet-stream` when unknown. */
export function contentTypeFor(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

function inside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Maps a raw (still percent-encoded) URL path to a file inside `root`, or null.
 * Refuses `..` segments (also encoded ones), backslashes, NUL bytes and symlinks that leave
 * the root. A path without an extension that names no file falls back to `index.html`
 * (the renderer is a single-page app).
 *
 * @example await resolveStatic('/app/dist/renderer', '/assets/index-abc.js')
 */
export async function resolveStatic(root: string, rawPath: string): Promise<string | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return null;
  }
  if (!decoded.startsWith('/') || decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/');
  if (segments.some((s) => s === '..' || s === '.')) return null;

  let realRoot: string;
  try {
    realRoot = await fs.realpath(root);
  } catch {
    return null;
  }
  const candidate = path.resolve(realRoot, '.' + decoded);
  if (!inside(realRoot, candidate)) return null;

  const found = await existingFile(realRoot, candidate);
  if (found) return found;
  const last = segments[segments.length - 1] ?? '';
  if (!path.extname(last)) return existingFile(realRoot, path.join(realRoot, 'index.html'));
  return null;
}

async function existingFile(realRoot: string, candidate: string): Promise<string | null> {
  try {
    let real = await fs.realpath(candidate);
    if (!inside(realRoot, real)) return null;
    let st = await fs.stat(real);
    if (st.isDirectory()) {
      real = await fs.realpath(path.join(real, 'index.html'));
      if (!inside(realRoot, real)) return null;
      st = await fs.stat(real);
    }
    return st.isFile() ? real : null;
  } catch {
    return null;
  }
}
