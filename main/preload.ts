// Preload (sandboxed, context-isolated). Exposes exactly the DuoscaleApi as `window.duoscale`
// and nothing else: one invoke channel per method, no generic send/on.
//
// Files dropped on the window: the preload turns them into paths with
// webUtils.getPathForFile (the renderer cannot) and delivers them through onEvent as
// { type: 'open-paths', source: 'drop', paths }.

import { contextBridge, ipcRenderer, webUtils } from 'electron';
import { API_METHODS } from '../app/api.ts';
import type { DuoscaleApi, DuoscaleEvent } from '../app/api.ts';
import type { WireReply } from '../app/server/wire.ts';
import { EVENT_CHANNEL, channelFor } from './channels.ts';
import type { AnyEvent } from './channels.ts';

const listeners = new Set<(e: DuoscaleEvent) => void>();

function emit(e: AnyEvent): void {
  for (const l of [...listeners]) {
    try {
      l(e as DuoscaleEvent);
    } catch (err) {
      console.error('Duoscale event listener failed', err);
    }
  }
}

ipcRenderer.on(EVENT_CHANNEL, (_event, payload: AnyEvent) => emit(payload));

function hasFiles(e: DragEvent): boolean {
  return !!e.dataTransfer && Array.from(e.dataTransfer.types).includes('Files');
}

window.addEventListener('dragover', (e) => {
  if (hasFiles(e)) e.preventDefault(); // allow dropping anywhere in the window
});
window.addEventListener('drop', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  const paths = Array.from(e.dataTransfer!.files)
    .map((f) => webUtils.getPathForFile(f))
    .filter((p) => p.length > 0);
  if (paths.length > 0) emit({ type: 'open-paths', paths, source: 'drop' });
});

const api: Record<string, unknown> = {};
for (const method of API_METHODS) {
  api[method] = async (arg?: unknown) => {
    const reply = (await ipcRenderer.invoke(channelFor(method), arg)) as WireReply;
    if (reply.ok) return reply.result;
    // Custom fields do not survive contextBridge; the message names the file and the fix.
    throw new Error(reply.error.message);
  };
}
api.onEvent = (listener: (e: DuoscaleEvent) => void) => {
  if (typeof listener !== 'function') throw new TypeError('onEvent needs a function');
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
};

contextBridge.exposeInMainWorld('duoscale', Object.freeze(api as unknown as DuoscaleApi));
