// main/main.ts start-up, run in Node with a FAKE electron module (main/testing/fake-electron.ts)
// because the Electron binary cannot be installed here. The bundle is built by esbuild like
// build:main, with 'electron' aliased to the fake; everything else is real (the
// DuoscaleService on a temp data folder, the IPC handlers, the protocol handlers).

import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { API_METHODS } from '../app/api.ts';
import { EVENT_CHANNEL, channelFor } from './channels.ts';
import type { FakeRecord } from './testing/fake-electron.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(ROOT, 'app', 'test', 'fixtures');

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('main/main.ts start-up with a fake electron module', () => {
  let tmp: string;
  let bundleDir: string;
  let fake: FakeRecord;
  const savedEnv = { ...process.env };

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'duoscale-wiring-'));
    const appPath = path.join(tmp, 'app');
    await mkdir(path.join(appPath, 'dist', 'renderer'), { recursive: true });
    await writeFile(path.join(appPath, 'dist', 'renderer', 'index.html'), '<!doctype html><title>Duoscale</title>');
    // Inside the repo so the external native packages resolve from node_modules.
    bundleDir = path.join(ROOT, 'dist', `test-main-wiring-${process.pid}`);
    await build({
      entryPoints: [path.join(ROOT, 'main', 'main.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: path.join(bundleDir, 'main.js'),
      external: ['sharp', 'better-sqlite3', 'onnxruntime-node'],
      alias: { electron: path.join(ROOT, 'main', 'testing', 'fake-electron.ts') },
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
      logLevel: 'error',
    });
    process.env.DUOSCALE_HOME = path.join(tmp, 'home');
    process.env.DUOSCALE_MODELS_DIR = FIXTURES;
    process.env.FAKE_ELECTRON_APP_PATH = appPath;
    await import(pathToFileURL(path.join(bundleDir, 'main.js')).href);
    fake = (globalThis as any).__duoscaleFakeElectron;
    await until(() => fake.windows.length === 1 && fake.windows[0]!.loaded.length === 1, 'the main window');
  });

  after(async () => {
    // Quit like Electron would: before-quit closes the service, then quits.
    const quit = fake?.appHandlers.get('before-quit')?.[0];
    if (quit) {
      quit({ preventDefault() {} });
      await until(() => fake.quitCalls > 0, 'app.quit after the service closed');
    }
    process.env = savedEnv;
    await rm(bundleDir, { recursive: true, force: true });
    await rm(tmp, { recursive: true, force: true });
  });

  it('starts without errors and points every data path at DUOSCALE_HOME before taking the lock', () => {
    assert.deepEqual(fake.errors, []);
    assert.deepEqual(fake.setPath, [['userData', path.join(tmp, 'home', 'electron')]]);
    assert.ok(fake.order.indexOf('setPath:userData') < fake.order.indexOf('requestSingleInstanceLock'));
  });

  it('registers both schemes as privileged but never CSP-bypassing', () => {
    assert.deepEqual(fake.schemes.map((s) => s.scheme).sort(), ['duoscale', 'duoscale-img']);
    for (const s of fake.schemes) {
      assert.equal(s.privileges.standard, true);
      assert.equal(s.privileges.secure, true);
      assert.notEqual(s.privileges.bypassCSP, true);
    }
    assert.deepEqual([...fake.protocolHandlers.keys()].sort(), ['duoscale', 'duoscale-img']);
  });

  it('opens one sandboxed, context-isolated window on duoscale://app with the preload', () => {
    const win = fake.windows[0]!;
    const prefs = win.options.webPreferences;
    assert.equal(prefs.contextIsolation, true);
    assert.equal(prefs.sandbox, true);
    assert.equal(prefs.nodeIntegration, false);
    assert.match(prefs.preload, /preload\.cjs$/);
    assert.deepEqual(win.loaded, ['duoscale://app/index.html']);
  });

  it('serves the renderer and refuses unknown images through the registered protocols', async () => {
    const page = await fake.protocolHandlers.get('duoscale')!(new Request('duoscale://app/index.html'));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'none'/);
    const img = await fake.protocolHandlers.get('duoscale-img')!(new Request('duoscale-img://result/1'));
    assert.equal(img.status, 404);
  });

  it('denies permissions by default', () => {
    let granted: boolean | null = null;
    fake.permissionRequest!({}, 'media', (g: boolean) => (granted = g), {});
    assert.equal(granted, false);
    assert.equal(fake.permissionCheck!({}, 'geolocation', 'duoscale://app', {}), false);
  });

  it('guards navigation and new windows on every webContents', () => {
    const wc = fake.windows[0]!.webContents;
    let prevented = 0;
    const ev = { preventDefault: () => prevented++ };
    wc.listeners.get('will-navigate')!(ev, 'https://evil.example/');
    wc.listeners.get('will-navigate')!(ev, 'duoscale://app/index.html#/batch');
    wc.listeners.get('will-redirect')!(ev, 'file:///etc/passwd');
    assert.equal(prevented, 2);
    assert.deepEqual(wc.windowOpenHandler!({ url: 'https://example.org/docs' }), { action: 'deny' });
    assert.deepEqual(wc.windowOpenHandler!({ url: 'file:///etc/passwd' }), { action: 'deny' });
    assert.deepEqual(fake.opened, ['https://example.org/docs']);
  });

  it('handles every API method over IPC, for our window only, and forwards events to it', async () => {
    assert.deepEqual([...fake.ipcHandlers.keys()].sort(), API_METHODS.map(channelFor).sort());
    const wc = fake.windows[0]!.webContents;
    const ours = { sender: { id: wc.id }, senderFrame: { url: 'duoscale://app/index.html', parent: null } };
    const reply = await fake.ipcHandlers.get(channelFor('settingsSet'))!(ours, { quality: 55 });
    assert.equal(reply.ok, true);
    assert.equal(reply.result.quality, 55);
    await until(() => wc.sent.some(([c, e]: [string, any]) => c === EVENT_CHANNEL && e.type === 'settings-changed'), 'the forwarded event', 2_000);
    const stranger = { sender: { id: wc.id + 100 }, senderFrame: { url: 'duoscale://app/index.html', parent: null } };
    const refused = await fake.ipcHandlers.get(channelFor('settingsGet'))!(stranger, undefined);
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, 'E_UNTRUSTED_SENDER');
  });

  it('installs the application menu', () => {
    const labels = fake.menu.template.map((m: { label?: string }) => m.label);
    assert.ok(labels.includes('&File') && labels.includes('&View'), String(labels));
  });
});
