// How an error crosses a transport (HTTP body or IPC reply): plain JSON with the fields the
// UI shows. Shared by the web mode and Electron's IPC handlers so both say the same thing.

export interface WireError {
  message: string;
  code?: string;
  file?: string;
  hint?: string;
}

/** A reply to one API call. */
export type WireReply = { ok: true; result: unknown } | { ok: false; error: WireError };

/** An error that carries its HTTP status (transport-level refusals: auth, host, origin, method). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/**
 * HTTP status for an error thrown by validation or the service: 404 for unknown ids, 400 for
 * other errors with a code (bad input; the message says what to fix), 500 for anything else.
 *
 * @example statusForError(new ApiArgumentError('enhance', 'path', 'must be absolute')) === 400
 */
export function statusForError(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  const e = err as { code?: unknown; name?: unknown } | null;
  const code = e && typeof e.code === 'string' ? e.code : '';
  if (/not[_-]?found/i.test(code)) return 404;
  if (code) return 400;
  if (e && (e.name === 'ApiArgumentError' || e.name === 'DuoscaleError')) return 400;
  return 500;
}

/** Plain JSON for an error; keeps message, code, file and hint when present. */
export function toWireError(err: unknown): WireError {
  const e = err as { message?: unknown; code?: unknown; file?: unknown; hint?: unknown } | null;
  const out: WireError = { message: e && typeof e.message === 'string' ? e.message : String(err) };
  if (e && typeof e.code === 'string') out.code = e.code;
  if (e && typeof e.file === 'string') out.file = e.file;
  if (e && typeof e.hint === 'string') out.hint = e.hint;
  return out;
}
