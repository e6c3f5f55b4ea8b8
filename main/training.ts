// IPC for training runs (the trainer runs as a child process, driven by app/trainer-bridge.ts).
import { handle } from './ipc.ts';
import type { MainContext } from './ipc.ts';

export function setupTraining(ctx: MainContext): void {
  const s = ctx.service;
  handle(ctx, 'trainingStart', (a) => s.trainingStart(a));
  handle(ctx, 'trainingStop', (a) => s.trainingStop(a));
  handle(ctx, 'trainingList', () => s.trainingList());
}
