// IPC for enhancing photos and the job queue.
import { handle } from './ipc.ts';
import type { MainContext } from './ipc.ts';

export function setupEnhance(ctx: MainContext): void {
  const s = ctx.service;
  handle(ctx, 'enhance', (a) => s.enhance(a));
  handle(ctx, 'batch', (a) => s.batch(a));
  handle(ctx, 'jobs', () => s.jobs());
  handle(ctx, 'pause', (a) => s.pause(a));
  handle(ctx, 'resume', (a) => s.resume(a));
  handle(ctx, 'cancel', (a) => s.cancel(a));
}
