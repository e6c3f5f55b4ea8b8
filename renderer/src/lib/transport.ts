// The renderer's one way to reach the core: `getApi()` returns a `DuoscaleApi`.
//
// Two implementations of one interface (STYLE.md 3.10):
// - Electron: the preload exposes the API as `window.duoscale` (contextBridge, IPC underneath).
// - Web mode (`duoscale serve`): POST /api/<method> with a JSON body, events from the
//   server-sent event stream GET /api/events. The token comes from the page URL
//   (`?token=...`, printed by `duoscale serve`) and is kept in sessionStorage so a reload
//   of a URL without it still works in the same tab.
//
// `pickFiles` in web mode: a browser cannot open a native dialog that returns absolute
// paths on the machine running the core. The renderer registers its path-entry dialog with
// `setPathPrompt(fn)`; `getApi().pickFiles(...)` then resolves with what the user typed
// (or null when cancelled). Without a registered prompt it asks the server, which answers
// null.

import { API_METHODS } from '../../../app/api.ts';
import type { ApiMethod, DuoscaleApi, DuoscaleEvent } from '../../../app/api.ts';

declare global {
  interface Window {
    duoscale?: DuoscaleApi;
  }
}

export type TransportKind = 'electron' | 'web';

/** An error from the core, with the fields the server sends (message names the file and the fix). */
export class ApiError extends Error {
  readonly code: string | undefined;
  readonly file: string | undefined;
  readonly hint: string | undefined;
  /** HTTP status in web mode; undefined under Electron. */
  readonly status: number | undefined;

  constructor(message: string, fields: { code?: string; file?: string; hint?: string; status?: number } = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = fields.code;
    this.file = fields.file;
    this.hint = fields.hint;
    this.status = fields.status;
  }
}

export type PathPrompt = (input: { folders: boolean; multiple: boolean }) => Promise<string[] | null>;

let api: DuoscaleApi | null = null;
let kind: TransportKind | null = null;
let pathPrompt: PathPrompt | null = null;

/**
 * The API for this page, created on first call.
 *
 * @example
 *   const api = getApi();
 *   const off = api.onEvent((e) => { if (e.type === 'job') jobs.update(e.job); });
 *   await api.enhance({ path: '/photos/a.jpg' });
 */
export function getApi(): DuoscaleApi {
  if (api) return api;
  if (typeof window !== 'undefined' && window.duoscale) {
    api = wrapElectron(window.duoscale);
    kind = 'electron';
  } else {
    api = createHttpApi({ token: readToken() });
    kind = 'web';
  }
  return api;
}

/** Which transport `getApi()` picked ('web' before the first call when no preload is present). */
export function transportKind(): TransportKind {
  if (kind) return kind;
  return typeof window !== 'undefined' && window.duoscale ? 'electron' : 'web';
}

/** Registers the renderer's path-entry dialog used by `pickFiles` in web mode. Returns an unregister function. */
export function setPathPrompt(prompt: PathPrompt | null): () => void {
  pathPrompt = prompt;
  return () => {
    if (pathPrompt === prompt) pathPrompt = null;
  };
}

function readToken(): string {
  const fromUrl = new URL(window.location.href).searchParams.get('token');
  try {
    if (fromUrl) {
      window.sessionStorage.setItem('duoscale-token', fromUrl);
      return fromUrl;
    }
    return window.sessionStorage.getItem('duoscale-token') ?? '';
  } catch {
    // sessionStorage can be unavailable (privacy settings); the URL is then the only source.
    return fromUrl ?? '';
  }
}

/** Electron errors cross contextBridge as plain Errors; give them the same type as web-mode errors. */
function wrapElectron(bridge: DuoscaleApi): DuoscaleApi {
  const out: Record<string, unknown> = {};
  for (const method of API_METHODS) {
    out[method] = async (arg: unknown) => {
      try {
        return await (bridge[method] as (a: unknown) => Promise<unknown>)(arg);
      } catch (err) {
        throw toApiError(err);
      }
    };
  }
  out.onEvent = (listener: (e: DuoscaleEvent) => void) => bridge.onEvent(listener);
  return out as unknown as DuoscaleApi;
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err && typeof err === 'object') {
    const e = err as { message?: unknown; code?: unknown; file?: unknown; hint?: unknown };
    // ipcRenderer.invoke prefixes "Error invoking remote method 'x': Error: "; the user needs only the rest.
    const raw = typeof e.message === 'string' ? e.message : String(err);
    const message = raw.replace(/^Error invoking remote method '[^']*': (?:\w*Error: )?/, '');
    return new ApiError(message, {
      code: typeof e.code === 'string' ? e.code : undefined,
      file: typeof e.file === 'string' ? e.file : undefined,
      hint: typeof e.hint === 'string' ? e.hint : undefined,
    });
  }
  return new ApiError(String(err));
}

export interface HttpApiOptions {
  token: string;
  /** Origin + path prefix of the server; '' = same origin as the page. */
  base?: string;
  fetch?: typeof fetch;
  EventSource?: typeof EventSource;
}

/**
 * The web-mode client. Exported for tests; the renderer uses `getApi()`.
 *
 * Wire format: POST {base}/api/<method>, header `x-duoscale-token`, body = JSON argument
 * (`null` for methods without one). Reply `{ ok: true, result }` or
 * `{ ok: false, error: { message, code?, file?, hint? } }` with a 4xx/5xx status.
 */
export function createHttpApi(options: HttpApiOptions): DuoscaleApi {
  const base = options.base ?? '';
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const ES = options.EventSource ?? globalThis.EventSource;

  async function call(method: ApiMethod, arg: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await doFetch(`${base}/api/${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-duoscale-token': options.token },
        body: JSON.stringify(arg === undefined ? null : arg),
      });
    } catch (err) {
      throw new ApiError(
        `Cannot reach the Duoscale server (${(err as Error).message}). Is "duoscale serve" still running?`,
        { code: 'SERVER_UNREACHABLE' },
      );
    }
    let body: { ok?: boolean; result?: unknown; error?: { message?: string; code?: string; file?: string; hint?: string } };
    try {
      body = await res.json();
    } catch {
      throw new ApiError(`The server answered ${method} with HTTP ${res.status} and no JSON body.`, { status: res.status });
    }
    if (res.ok && body.ok) return body.result; // null: void methods, or pickFiles cancelled
    const e = body.error ?? {};
    throw new ApiError(e.message ?? `${method} failed with HTTP ${res.status}`, {
      code: e.code,
      file: e.file,
      hint: e.hint,
      status: res.status,
    });
  }

  const listeners = new Set<(e: DuoscaleEvent) => void>();
  let source: EventSource | null = null;

  function openStream(): void {
    if (source || !ES) return;
    source = new ES(`${base}/api/events?token=${encodeURIComponent(options.token)}`);
    source.onmessage = (msg: MessageEvent) => {
      let event: DuoscaleEvent;
      try {
        event = JSON.parse(msg.data as string);
      } catch {
        return;
      }
      for (const l of [...listeners]) {
        try {
          l(event);
        } catch (err) {
          console.error('Duoscale event listener failed', err);
        }
      }
    };
    // EventSource reconnects by itself after network errors; nothing to do here.
  }

  const out: Record<string, unknown> = {};
  for (const method of API_METHODS) out[method] = (arg?: unknown) => call(method, arg);
  out.pickFiles = async (input: { folders: boolean; multiple: boolean }) => {
    if (pathPrompt) return pathPrompt(input);
    return call('pickFiles', input);
  };
  out.onEvent = (listener: (e: DuoscaleEvent) => void) => {
    listeners.add(listener);
    openStream();
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && source) {
        source.close();
        source = null;
      }
    };
  };
  return out as unknown as DuoscaleApi;
}
