// IPC for settings.
import { handle } from './ipc.ts';
import type { MainContext } from './ipc.ts';

export function setupSettings(ctx: MainContext): void {
  const s = ctx.service;
  handle(ctx, 'settingsGet', () => s.settingsGet());
  handle(ctx, 'settingsSet', (a) => s.settingsSet(a));
}
