// Forwards core events to every renderer window.

import type { DuoscaleApi } from '../app/api.ts';
import type { AnyEvent } from './channels.ts';

/** Subscribes once to the service; `broadcast` sends to all windows. Returns the unsubscribe function. */
export function setupEvents(service: Pick<DuoscaleApi, 'onEvent'>, broadcast: (e: AnyEvent) => void): () => void {
  return service.onEvent((e) => broadcast(e));
}
