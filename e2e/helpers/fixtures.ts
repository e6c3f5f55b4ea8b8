// Per-test fixtures: a fresh DUOSCALE_HOME and work folder, a real `duoscale serve`
// started on it, and the page object opened on its URL.
import { test as base, expect } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuoscaleApp } from './app.ts';
import { serve, type Served } from './server.ts';

interface Fixtures {
  /** Fresh temp folder for this test: home/ (DUOSCALE_HOME), photos/, out/. */
  work: string;
  home: string;
  server: Served;
  app: DuoscaleApp;
}

export const test = base.extend<Fixtures>({
  work: async ({}, use) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'duoscale-e2e-'));
    await use(dir);
    rmSync(dir, { recursive: true, force: true });
  },
  home: async ({ work }, use) => { await use(path.join(work, 'home')); },
  server: async ({ home }, use, testInfo) => {
    const s = await serve(home);
    await use(s);
    await s.stop();
    if (testInfo.status !== testInfo.expectedStatus) await testInfo.attach('duoscale serve output', { body: s.log() });
  },
  app: async ({ page, server }, use) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const app = new DuoscaleApp(page);
    await app.open(server.url);
    await use(app);
    expect(errors, 'the renderer threw uncaught errors').toEqual([]);
  },
});

export { expect };
