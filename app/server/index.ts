// Local web mode: the renderer and the DuoscaleApi over HTTP on loopback.
//
// Routes (all behind the Host check; every /api and /img call needs the token):
//   POST /api/<method>          JSON body = the argument; reply { ok, result } or { ok: false, error }
//   GET  /api/events?token=...  server-sent events, one `data:` line of JSON per DuoscaleEvent
//   GET  /img/<kind>/<id>?token=...  an image the catalog knows (kind: original|result|thumb)
//   GET  /anything-else         static files of the built renderer, CSP on every response
//
// `pickFiles` answers null here: a browser cannot return paths on the server's disk, so the
// renderer shows a path-entry dialog instead (renderer/src/lib/transport.ts, setPathPrompt).
// `imageUrl` answers `/img/<kind>/<id>?token=...` for ids the catalog knows.

import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { API_METHODS } from '../api.ts';
import type { ApiMethod, DuoscaleApi } from '../api.ts';
import { validateApiArgs } from '../api-validate.ts';
import { EventHub } from './events.ts';
import { lookupImage, parseImageRef } from './images.ts';
import type { ImageLookup } from './images.ts';
import {
  hostAllowed,
  isLoopbackHost,
  newToken,
  originAllowed,
  securityHeaders,
  tokenMatches,
} from './security.ts';
import { contentTypeFor, resolveStatic } from './static.ts';
import { HttpError, statusForError, toWireError } from './wire.ts';

export type { ImageLookup } from './images.ts';
export { statusForError, toWireError } from './wire.ts';

/** Validates (and may normalise) the argument of `method`; throws an error with a message on bad input. */
export type ArgValidator = (method: ApiMethod, arg: unknown) => unknown;

export interface ServerOptions {
  /** 0 or missing: a free port chosen by the OS. */
  port?: number;
  /** Loopback only: '127.0.0.1' (default), 'localhost' or '::1'. Any other value is refused. */
  host?: '127.0.0.1' | 'localhost' | '::1';
  service: DuoscaleApi & Partial<ImageLookup>;
  /** Folder with the built renderer (dist/renderer). */
  staticDir: string;
  /** Argument validation run before every call; default `validateApiArgs` of app/api-validate.ts. */
  validate?: ArgValidator;
  /** Fixed token (tests); default: 32 random bytes. */
  token?: string;
}

export interface RunningServer {
  /** Address to open in a browser, token included: http://127.0.0.1:PORT/?token=TOKEN */
  url: string;
  token: string;
  /** Origin without the token, e.g. http://127.0.0.1:7860 */
  origin: string;
  port: number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1 << 20; // API arguments are small JSON; 1 MiB is generous

/**
 * Starts the web mode server.
 *
 * @example
 *   const server = await startServer({ service, staticDir: 'dist/renderer', port: 7860 });
 *   console.log(`Open ${server.url}`);
 *   // later
 *   await server.close();
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) {
    throw new Error(
      `Refusing to listen on "${host}": the web mode serves your files and only binds to loopback ` +
        `(127.0.0.1, localhost or ::1). To use it from another machine, forward the port over SSH ` +
        `(ssh -L PORT:127.0.0.1:PORT user@host).`,
    );
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`Invalid port ${String(options.port)}: use an integer from 1 to 65535, or 0 for a free one.`);
  }
  const token = options.token ?? newToken();
  const { service, staticDir } = options;
  const validate: ArgValidator = options.validate ?? validateApiArgs;
  const hub = new EventHub();
  const unsubscribe = service.onEvent((e) => hub.publish(e));
  let boundPort = 0;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { ok: false, error: { message: String(err?.message ?? err) } });
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));

    if (!hostAllowed(req.headers.host, boundPort)) {
      return sendError(res, new HttpError(403, `Host "${req.headers.host ?? ''}" is not this server; open the URL that "duoscale serve" printed.`, 'BAD_HOST'));
    }
    const origin = req.headers.origin;
    const crossSite = req.headers['sec-fetch-site'] === 'cross-site';

    if (rawPath.startsWith('/api/') || rawPath.startsWith('/img/')) {
      if (!originAllowed(origin, boundPort) || crossSite) {
        return sendError(res, new HttpError(403, `Requests from origin "${origin ?? 'cross-site'}" are not allowed.`, 'BAD_ORIGIN'));
      }
      const given = headerValue(req.headers['x-duoscale-token']) ?? query.get('token');
      if (!tokenMatches(token, given)) {
        return sendError(res, new HttpError(401, given ? 'Wrong token: open the URL that "duoscale serve" printed.' : 'Missing token: open the URL that "duoscale serve" printed.', 'UNAUTHORIZED'));
      }
      if (rawPath === '/api/events') {
        if (req.method !== 'GET') return sendError(res, new HttpError(405, 'Use GET for /api/events.', 'METHOD_NOT_ALLOWED'));
        hub.attach(res, securityHeaders());
        return;
      }
      if (rawPath.startsWith('/img/')) return serveImage(req, res, rawPath);
      return callApi(req, res, rawPath.slice('/api/'.length));
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(res, new HttpError(405, `${req.method} is not allowed here.`, 'METHOD_NOT_ALLOWED'));
    }
    const file = await resolveStatic(staticDir, rawPath);
    if (!file && rawPath === '/favicon.ico') {
      // Browsers ask for it on their own; an empty answer keeps the console free of a 404.
      res.writeHead(204, securityHeaders());
      res.end();
      return;
    }
    if (!file) {
      const built = await fs.stat(staticDir).then((s) => s.isDirectory(), () => false);
      const message = built ? 'Not found.' : `The renderer is not built (${staticDir} is missing): run "npm run build:renderer".`;
      return sendText(res, 404, message);
    }
    const isHtml = file.endsWith('.html');
    return sendFile(req, res, file, {
      // index.html must be re-read after a rebuild; hashed assets may be cached.
      'cache-control': isHtml ? 'no-store' : 'public, max-age=31536000, immutable',
    });
  }

  async function callApi(req: http.IncomingMessage, res: http.ServerResponse, name: string): Promise<void> {
    if (req.method !== 'POST') return sendError(res, new HttpError(405, `Use POST for /api/${name}.`, 'METHOD_NOT_ALLOWED'));
    if (!(API_METHODS as readonly string[]).includes(name)) {
      return sendError(res, new HttpError(404, `Unknown API method "${name}".`, 'UNKNOWN_METHOD'));
    }
    const method = name as ApiMethod;
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(type)) {
      return sendError(res, new HttpError(415, 'Send the argument as JSON (content-type: application/json).', 'BAD_CONTENT_TYPE'));
    }
    let arg: unknown;
    try {
      const text = await readBody(req);
      arg = text.trim() === '' ? undefined : JSON.parse(text);
    } catch (err) {
      if (err instanceof HttpError) return sendError(res, err);
      return sendError(res, new HttpError(400, `The body of /api/${method} is not valid JSON: ${(err as Error).message}`, 'BAD_JSON'));
    }
    if (arg === null) arg = undefined;
    try {
      const checked = validate(method, arg);
      const result = await dispatch(method, checked);
      sendJson(res, 200, { ok: true, result: result === undefined ? null : result });
    } catch (err) {
      sendError(res, err);
    }
  }

  async function dispatch(method: ApiMethod, arg: unknown): Promise<unknown> {
    if (method === 'pickFiles') {
      // No native dialog in a browser; the renderer's path-entry dialog takes over.
      return null;
    }
    if (method === 'imageUrl') {
      const a = (arg ?? {}) as { kind?: unknown; id?: unknown };
      const ref = parseImageRef(String(a.kind), String(a.id));
      if (!ref) {
        throw new HttpError(400, `imageUrl needs { kind: 'original' | 'result' | 'thumb', id: positive integer }, got ${JSON.stringify(arg)}.`, 'INVALID_ARGUMENT');
      }
      if (!(await lookupImage(service, ref))) {
        throw new HttpError(404, `The catalog has no ${ref.kind} image with id ${ref.id}.`, 'NOT_FOUND');
      }
      return `/img/${ref.kind}/${ref.id}?token=${encodeURIComponent(token)}`;
    }
    const fn = service[method] as (a: unknown) => Promise<unknown>;
    return fn.call(service, arg);
  }

  async function serveImage(req: http.IncomingMessage, res: http.ServerResponse, rawPath: string): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(res, new HttpError(405, 'Use GET for images.', 'METHOD_NOT_ALLOWED'));
    }
    const parts = rawPath.split('/'); // ['', 'img', kind, id]
    const ref = parts.length === 4 ? parseImageRef(parts[2]!, parts[3]!) : null;
    const file = ref ? await lookupImage(service, ref) : null;
    if (!file) return sendError(res, new HttpError(404, 'No such image in the catalog.', 'NOT_FOUND'));
    return sendFile(req, res, file, { 'cache-control': 'private, no-cache' });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  boundPort = (server.address() as AddressInfo).port;
  const hostPart = host === '::1' ? '[::1]' : host;
  const origin = `http://${hostPart}:${boundPort}`;

  let closed: Promise<void> | null = null;
  return {
    url: `${origin}/?token=${encodeURIComponent(token)}`,
    token,
    origin,
    port: boundPort,
    close() {
      closed ??= new Promise<void>((resolve) => {
        unsubscribe();
        hub.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `The request body is over ${MAX_BODY_BYTES} bytes.`, 'TOO_LARGE'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendError(res: http.ServerResponse, err: unknown): void {
  sendJson(res, statusForError(err), { ok: false, error: toWireError(err) });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...securityHeaders(),
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    ...securityHeaders(),
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function sendFile(req: http.IncomingMessage, res: http.ServerResponse, file: string, extra: Record<string, string>): Promise<void> {
  const st = await fs.stat(file);
  res.writeHead(200, {
    ...securityHeaders(),
    ...extra,
    'content-type': contentTypeFor(file),
    'content-length': st.size,
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    const stream = createReadStream(file);
    stream.on('error', () => {
      res.destroy();
      resolve();
    });
    stream.on('end', resolve);
    stream.pipe(res);
  });
}
