// IPC contract between main and preload: one channel per API method, one event channel.
// Pure module (no electron import), bundled into both main and preload.

import type { ApiMethod, DuoscaleEvent } from '../app/api.ts';

/** Scheme + host the renderer is loaded from (`duoscale://app/index.html`). */
export const APP_SCHEME = 'duoscale';
export const APP_ORIGIN = 'duoscale://app';
/** Scheme for catalog images: `duoscale-img://<kind>/<id>`. */
export const IMG_SCHEME = 'duoscale-img';

export const CHANNEL_PREFIX = 'duoscale:';
/** main -> renderer: DuoscaleEvent and ShellEvent objects. */
export const EVENT_CHANNEL = 'duoscale:event';

/** The invoke channel of one API method. */
export function channelFor(method: ApiMethod): string {
  return `${CHANNEL_PREFIX}${method}`;
}

/**
 * Events that come from the desktop shell rather than the core: files dropped on the window
 * or opened from the menu, and menu navigation. They arrive through `onEvent` like any
 * DuoscaleEvent (renderer/src/lib/transport.ts declares the same shape for the renderer).
 */
export type ShellEvent =
  | { type: 'open-paths'; paths: string[]; source: 'drop' | 'menu' }
  | { type: 'navigate'; view: ShellView };

/** The renderer's views (renderer/src/lib/app.svelte.ts `View`). */
export type ShellView = 'library' | 'compare' | 'batch' | 'models' | 'settings';
export const SHELL_VIEWS: readonly ShellView[] = ['library', 'compare', 'batch', 'models', 'settings'];

export type AnyEvent = DuoscaleEvent | ShellEvent;
