// The one place where IPC turns into calls on the core: sender check, argument validation,
// uniform replies. Feature registrars (enhance.ts, catalog.ts, ...) call `handle()` with a
// few lines each. No electron import here: `ipc` is Electron's ipcMain in main.ts and a fake
// in tests.

import { API_METHODS } from '../app/api.ts';
import type { ApiMethod, DuoscaleApi } from '../app/api.ts';
import { validateApiArgs } from '../app/api-validate.ts';
import type { ImageLookup } from '../app/server/images.ts';
import { toWireError } from '../app/server/wire.ts';
import type { WireReply } from '../app/server/wire.ts';
import { channelFor } from './channels.ts';
import type { SenderInfo } from './security.ts';

/** The part of Electron's ipcMain we use. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: any, ...args: any[]) => unknown): void;
  removeHandler(channel: string): void;
}

/** Native shell functions the handlers need (Electron's dialog and shell in main.ts). */
export interface ShellDeps {
  showOpenDialog(options: {
    title: string;
    properties: Array<'openFile' | 'openDirectory' | 'multiSelections' | 'createDirectory'>;
    filters?: { name: string; extensions: string[] }[];
  }): Promise<{ canceled: boolean; filePaths: string[] }>;
  showSaveDialog(options: {
    title: string;
    defaultPath?: string;
    filters?: { name: string; extensions: string[] }[];
  }): Promise<{ canceled: boolean; filePath?: string }>;
}

export interface MainContext {
  ipc: IpcMainLike;
  service: DuoscaleApi & Partial<ImageLookup>;
  shell: ShellDeps;
  isTrusted(event: SenderInfo): boolean;
  log(message: string): void;
  /** Methods that have a handler; filled by `handle()`. */
  readonly registered: Set<ApiMethod>;
}

export function createContext(parts: Omit<MainContext, 'registered' | 'log'> & { log?: (m: string) => void }): MainContext {
  return { log: (m) => console.warn(m), ...parts, registered: new Set() };
}

type Arg<M extends ApiMethod> = Parameters<DuoscaleApi[M]>[0];

/**
 * Registers the handler of one API method on its channel. The handler runs only for
 * trusted senders and only with arguments that passed `validateApiArgs`; it replies
 * `{ ok: true, result }` or `{ ok: false, error }` (the preload turns the latter into a
 * rejected promise whose message names the file and the fix).
 *
 * @example handle(ctx, 'jobs', () => ctx.service.jobs());
 */
export function handle<M extends ApiMethod>(ctx: MainContext, method: M, impl: (arg: Arg<M>) => Promise<unknown> | unknown): void {
  if (ctx.registered.has(method)) throw new Error(`IPC handler for "${method}" registered twice`);
  ctx.registered.add(method);
  ctx.ipc.handle(channelFor(method), async (event: SenderInfo, arg: unknown): Promise<WireReply> => {
    if (!ctx.isTrusted(event)) {
      ctx.log(`Refused IPC "${method}" from ${event.senderFrame?.url ?? 'a destroyed frame'}`);
      return {
        ok: false,
        error: { message: 'Refused: this request did not come from the Duoscale window.', code: 'E_UNTRUSTED_SENDER' },
      };
    }
    try {
      const checked = validateApiArgs(method, arg) as Arg<M>;
      const result = await impl(checked);
      return { ok: true, result: result === undefined ? null : result };
    } catch (err) {
      return { ok: false, error: toWireError(err) };
    }
  });
}

/** API methods without a handler (must be empty after all setupX() ran). */
export function missingHandlers(ctx: MainContext): ApiMethod[] {
  return API_METHODS.filter((m) => !ctx.registered.has(m));
}
