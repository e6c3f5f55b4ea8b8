// Handlers of our two schemes, as plain (Request) => Response functions so they run (and are
// tested) without Electron; main.ts registers them with protocol.handle.
//   duoscale://app/...             the built renderer (dist/renderer), with the window CSP
//   duoscale-img://<kind>/<id>     an image the catalog knows; the URL never carries a path

import { createReadStream, promises as fs } from 'node:fs';
import { Readable } from 'node:stream';
import type { DuoscaleApi } from '../app/api.ts';
import { lookupImage, parseImageRef } from '../app/server/images.ts';
import type { ImageLookup } from '../app/server/images.ts';
import { contentTypeFor, resolveStatic } from '../app/server/static.ts';
import { windowCsp } from './security.ts';

/** The catalog reference in a duoscale-img: URL, or null. */
export function imageRefFromUrl(url: string) {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== 'duoscale-img:' || u.search || u.hash) return null;
  const id = u.pathname.replace(/^\//, '');
  return parseImageRef(u.host, id);
}

async function fileResponse(file: string, headers: Record<string, string>): Promise<Response> {
  const st = await fs.stat(file);
  const body = Readable.toWeb(createReadStream(file)) as unknown as ReadableStream;
  return new Response(body, {
    status: 200,
    headers: { ...headers, 'content-type': contentTypeFor(file), 'content-length': String(st.size), 'x-content-type-options': 'nosniff' },
  });
}

function notFound(message: string): Response {
  return new Response(message, { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}

/** Serves the renderer from `rendererDir`; unknown hosts and paths outside it are 404. */
export function createAppHandler(rendererDir: string): (request: Request) => Promise<Response> {
  return async (request) => {
    const u = new URL(request.url);
    if (u.protocol !== 'duoscale:' || u.host !== 'app') return notFound('Unknown host.');
    // u.pathname keeps percent-encoding; resolveStatic decodes and refuses traversal.
    const raw = request.url.slice(`duoscale://app`.length).split(/[?#]/)[0] || '/';
    const file = await resolveStatic(rendererDir, raw);
    if (!file) return notFound(`Not found: ${u.pathname}. Is the renderer built (npm run build:renderer)?`);
    return fileResponse(file, { 'content-security-policy': windowCsp(), 'cache-control': 'no-cache' });
  };
}

/** Serves catalog images by kind and id; anything else is 404. */
export function createImageHandler(service: DuoscaleApi & Partial<ImageLookup>): (request: Request) => Promise<Response> {
  return async (request) => {
    const ref = imageRefFromUrl(request.url);
    const file = ref ? await lookupImage(service, ref) : null;
    if (!file) return notFound('No such image in the catalog.');
    return fileResponse(file, { 'cache-control': 'no-cache' });
  };
}
