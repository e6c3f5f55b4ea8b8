// IPC for the model registry.
import { handle } from './ipc.ts';
import type { MainContext } from './ipc.ts';

export function setupModels(ctx: MainContext): void {
  const s = ctx.service;
  handle(ctx, 'modelsList', () => s.modelsList());
  handle(ctx, 'modelImport', (a) => s.modelImport(a));
  handle(ctx, 'modelRemove', (a) => s.modelRemove(a));
  handle(ctx, 'modelSetDefault', (a) => s.modelSetDefault(a));
}
