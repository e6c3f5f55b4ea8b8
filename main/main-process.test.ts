// Electron main-process code WITHOUT Electron (its binary cannot be installed here).
// What stands in for Electron is named as such: `FakeIpcMain` (records handlers like
// ipcMain.handle), `fakeShell` (native dialogs), and a `fakeElectron` module object for the
// preload bundle run in a node:vm context. Everything behind them is real: the
// DuoscaleService with a temp data folder and SQLite catalog, api-validate, the esbuild
// bundles of main and preload, the protocol handlers reading real files.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import vm from 'node:vm';
import sharp from 'sharp';
import { API_METHODS } from '../app/api.ts';
import type { DuoscaleEvent } from '../app/api.ts';
import { DuoscaleService } from '../app/service.ts';
import { setupCatalog } from './catalog.ts';
import { EVENT_CHANNEL, channelFor } from './channels.ts';
import { exportCatalog, openDialogOptions, setupDialogs } from './dialogs.ts';
import { setupEnhance } from './enhance.ts';
import { setupEvents } from './events.ts';
import { createContext, missingHandlers } from './ipc.ts';
import type { IpcMainLike, MainContext, ShellDeps } from './ipc.ts';
import { menuTemplate } from './menu.ts';
import type { MenuActions } from './menu.ts';
import { setupModels } from './models.ts';
import { builtinModelsDir, rendererDir, userDataOverride } from './paths.ts';
import { createAppHandler, createImageHandler, imageRefFromUrl } from './protocol.ts';
import { isAppUrl, isExternalWebUrl, isTrustedSender, permissionAllowed, secureWebPreferences, windowCsp } from './security.ts';
import type { SenderInfo } from './security.ts';
import { setupSettings } from './settings.ts';
import { setupTraining } from './training.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(ROOT, 'app', 'test', 'fixtures');

/** Stand-in for Electron's ipcMain: records handlers, lets the test invoke them with any sender. */
class FakeIpcMain implements IpcMainLike {
  readonly handlers = new Map<string, (event: any, ...args: any[]) => unknown>();
  handle(channel: string, listener: (event: any, ...args: any[]) => unknown): void {
    if (this.handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`);
    this.handlers.set(channel, listener);
  }
  removeHandler(channel: string): void {
    this.handlers.delete(channel);
  }
  async invoke(channel: string, event: SenderInfo, arg?: unknown): Promise<any> {
    const h = this.handlers.get(channel);
    if (!h) throw new Error(`No handler registered for '${channel}'`);
    return h(event, arg);
  }
}

const OUR_WEBCONTENTS = 1;
const trusted: SenderInfo = { sender: { id: OUR_WEBCONTENTS }, senderFrame: { url: 'duoscale://app/index.html', parent: null } };

function registerAll(ctx: MainContext): void {
  setupEnhance(ctx);
  setupCatalog(ctx);
  setupModels(ctx);
  setupSettings(ctx);
  setupTraining(ctx);
  setupDialogs(ctx);
}

describe('security rules (main/security.ts)', () => {
  it('isTrustedSender() accepts only the top frame of our window showing duoscale://app', () => {
    const ours = (id: number) => id === OUR_WEBCONTENTS;
    assert.equal(isTrustedSender(trusted, ours), true);
    assert.equal(isTrustedSender({ ...trusted, sender: { id: 2 } }, ours), false, 'another webContents');
    assert.equal(isTrustedSender({ ...trusted, senderFrame: { url: 'duoscale://app/index.html', parent: {} } }, ours), false, 'an iframe');
    assert.equal(isTrustedSender({ ...trusted, senderFrame: { url: 'https://evil.example/', parent: null } }, ours), false, 'navigated away');
    assert.equal(isTrustedSender({ ...trusted, senderFrame: { url: 'duoscale://other/index.html', parent: null } }, ours), false, 'other host');
    assert.equal(isTrustedSender({ ...trusted, senderFrame: { url: 'file:///tmp/x.html', parent: null } }, ours), false, 'file:');
    assert.equal(isTrustedSender({ ...trusted, senderFrame: null }, ours), false, 'destroyed frame');
  });

  it('navigation and external-link predicates', () => {
    assert.equal(isAppUrl('duoscale://app/index.html#/batch'), true);
    assert.equal(isAppUrl('duoscale://evil/index.html'), false);
    assert.equal(isAppUrl('file:///etc/passwd'), false);
    assert.equal(isAppUrl('not a url'), false);
    assert.equal(isExternalWebUrl('https://example.org/docs'), true);
    for (const u of ['javascript:alert(1)', 'file:///etc/passwd', 'duoscale-img://original/1', 'smb://host/share']) {
      assert.equal(isExternalWebUrl(u), false, u);
    }
  });

  it('denies every permission except writing sanitised text to the clipboard', () => {
    for (const p of ['media', 'geolocation', 'notifications', 'openExternal', 'clipboard-read', 'fileSystem', 'hid', 'usb', 'unknown']) {
      assert.equal(permissionAllowed(p), false, p);
    }
    assert.equal(permissionAllowed('clipboard-sanitized-write'), true);
  });

  it('window CSP and webPreferences are strict', () => {
    const csp = windowCsp();
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /img-src [^;]*duoscale-img:/);
    assert.doesNotMatch(csp, /unsafe-eval|script-src[^;]*unsafe-inline/);
    const prefs = secureWebPreferences('/x/preload.cjs');
    assert.equal(prefs.contextIsolation, true);
    assert.equal(prefs.sandbox, true);
    assert.equal(prefs.nodeIntegration, false);
    assert.equal(prefs.webSecurity, true);
    assert.equal(prefs.webviewTag, false);
    assert.equal(prefs.preload, '/x/preload.cjs');
  });

  it('user-data folder comes from --user-data-dir, then DUOSCALE_HOME', () => {
    assert.equal(userDataOverride(['electron', '.', '--user-data-dir=/tmp/a'], { DUOSCALE_HOME: '/tmp/b' }), '/tmp/a');
    assert.equal(userDataOverride(['electron', '.', '--user-data-dir', '/tmp/c'], {}), '/tmp/c');
    assert.equal(userDataOverride(['electron', '.'], { DUOSCALE_HOME: '/tmp/b' }), '/tmp/b');
    assert.equal(userDataOverride(['electron', '.'], {}), null);
    assert.equal(builtinModelsDir({ packaged: true, resourcesPath: '/opt/Duoscale/resources', appPath: '/x', env: {} }), '/opt/Duoscale/resources/models');
    assert.equal(builtinModelsDir({ packaged: false, resourcesPath: '/r', appPath: '/repo', env: {} }), '/repo/resources/models');
    assert.equal(rendererDir({ packaged: true, resourcesPath: '/opt/Duoscale/resources', appPath: '/x/app.asar' }), '/opt/Duoscale/resources/renderer');
    assert.equal(rendererDir({ packaged: false, resourcesPath: '/r', appPath: '/repo' }), '/repo/dist/renderer');
  });
});

describe('menu (main/menu.ts)', () => {
  const calls: unknown[] = [];
  const actions: MenuActions = {
    openPhotos: () => calls.push('openPhotos'),
    openFolder: () => calls.push('openFolder'),
    exportCatalog: () => calls.push('exportCatalog'),
    navigate: (v) => calls.push(['navigate', v]),
    openDataFolder: () => calls.push('openDataFolder'),
  };
  const flat = (items: any[]): any[] => items.flatMap((i) => [i, ...(Array.isArray(i.submenu) ? flat(i.submenu) : [])]);

  it('has unique shortcuts wired to the actions, on Linux and macOS', () => {
    for (const platform of ['linux', 'darwin'] as const) {
      const items = flat(menuTemplate(actions, { platform, dev: false }));
      const accels = items.map((i) => i.accelerator).filter(Boolean);
      assert.equal(new Set(accels).size, accels.length, `duplicate accelerators on ${platform}: ${accels}`);
      const byAccel = (a: string) => items.find((i) => i.accelerator === a);
      calls.length = 0;
      byAccel('CmdOrCtrl+O').click();
      byAccel('CmdOrCtrl+Shift+O').click();
      byAccel('CmdOrCtrl+E').click();
      byAccel('CmdOrCtrl+3').click();
      byAccel('CmdOrCtrl+,').click();
      assert.deepEqual(calls, ['openPhotos', 'openFolder', 'exportCatalog', ['navigate', 'batch'], ['navigate', 'settings']]);
      assert.ok(!items.some((i) => i.role === 'toggleDevTools'), 'no devtools in release builds');
    }
    assert.ok(flat(menuTemplate(actions, { platform: 'linux', dev: true })).some((i) => i.role === 'toggleDevTools'));
  });
});

describe('IPC registrars with a FakeIpcMain and the real DuoscaleService', () => {
  let dir: string;
  let service: DuoscaleService;
  let ipc: FakeIpcMain;
  let ctx: MainContext;
  let dialogAnswer: { canceled: boolean; filePaths: string[] };
  const dialogCalls: unknown[] = [];
  const logged: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'duoscale-main-'));
    service = await DuoscaleService.open({ home: path.join(dir, 'home'), builtinModels: FIXTURES });
    ipc = new FakeIpcMain();
    const fakeShell: ShellDeps = {
      showOpenDialog: async (o) => {
        dialogCalls.push(o);
        return dialogAnswer;
      },
      showSaveDialog: async () => ({ canceled: false, filePath: path.join(dir, 'export.json') }),
    };
    ctx = createContext({
      ipc,
      service,
      shell: fakeShell,
      isTrusted: (e) => isTrustedSender(e, (id) => id === OUR_WEBCONTENTS),
      log: (m) => logged.push(m),
    });
    registerAll(ctx);
  });

  after(async () => {
    await service.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('registers one handler per API method, each on its own channel', () => {
    assert.deepEqual(missingHandlers(ctx), []);
    assert.deepEqual([...ipc.handlers.keys()].sort(), API_METHODS.map(channelFor).sort());
    assert.throws(() => setupSettings(ctx), /registered twice/);
  });

  it('refuses an untrusted sender without calling the core', async () => {
    const before = (await service.settingsGet()).quality;
    const reply = await ipc.invoke(channelFor('settingsSet'), {
      sender: { id: OUR_WEBCONTENTS },
      senderFrame: { url: 'https://evil.example/', parent: null },
    }, { quality: before === 50 ? 51 : 50 });
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'E_UNTRUSTED_SENDER');
    assert.equal((await service.settingsGet()).quality, before);
    assert.match(logged.at(-1)!, /Refused IPC "settingsSet" from https:\/\/evil\.example/);
  });

  it('validates arguments and answers the validator message', async () => {
    const reply = await ipc.invoke(channelFor('batch'), trusted, { inputs: ['relative.jpg'], outputDir: '/tmp' });
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'invalid-argument');
    assert.match(reply.error.message, /inputs\[0\].*absolute path/);
    const extra = await ipc.invoke(channelFor('settingsSet'), trusted, { quality: 80, __proto__x: 1 });
    assert.equal(extra.ok, false);
    assert.match(extra.error.message, /not a known field/);
  });

  it('round-trips settings through IPC and forwards the event to the windows', async () => {
    const seen: DuoscaleEvent[] = [];
    const off = setupEvents(service, (e) => seen.push(e as DuoscaleEvent));
    const reply = await ipc.invoke(channelFor('settingsSet'), trusted, { quality: 77 });
    off();
    assert.equal(reply.ok, true);
    assert.equal(reply.result.quality, 77);
    assert.equal((await service.settingsGet()).quality, 77);
    assert.ok(seen.some((e) => e.type === 'settings-changed' && e.settings.quality === 77));
  });

  it('keeps error codes of the core (unknown model, unknown image)', async () => {
    const model = await ipc.invoke(channelFor('modelSetDefault'), trusted, { id: 'no-such-model' });
    assert.equal(model.ok, false);
    assert.equal(model.error.code, 'E_MODEL_NOT_FOUND');
    const img = await ipc.invoke(channelFor('imageUrl'), trusted, { kind: 'result', id: 42 });
    assert.equal(img.ok, false);
    assert.equal(img.error.code, 'E_NOT_FOUND');
  });

  it('pickFiles opens the native dialog with the right options and answers null on cancel', async () => {
    dialogAnswer = { canceled: false, filePaths: ['/photos/a.jpg', '/photos/b.jpg'] };
    const picked = await ipc.invoke(channelFor('pickFiles'), trusted, { folders: false, multiple: true });
    assert.deepEqual(picked, { ok: true, result: ['/photos/a.jpg', '/photos/b.jpg'] });
    assert.deepEqual((dialogCalls.at(-1) as any).properties, ['openFile', 'multiSelections']);
    dialogAnswer = { canceled: true, filePaths: [] };
    const cancelled = await ipc.invoke(channelFor('pickFiles'), trusted, { folders: true, multiple: false });
    assert.deepEqual(cancelled, { ok: true, result: null });
    assert.deepEqual((dialogCalls.at(-1) as any).properties, ['openDirectory', 'createDirectory']);
    assert.equal(openDialogOptions({ folders: true, multiple: false }).filters, undefined);
  });

  it('enhances a photo over IPC; imageUrl gives duoscale-img URLs the protocol serves; export writes the catalog', async () => {
    const photo = path.join(dir, 'p.png');
    await sharp({ create: { width: 24, height: 16, channels: 3, background: '#3060a0' } }).png().toFile(photo);
    const queued = await ipc.invoke(channelFor('enhance'), trusted, { path: photo, outputDir: path.join(dir, 'out') });
    assert.equal(queued.ok, true, JSON.stringify(queued));
    const job = await service.waitJob(queued.result.id);
    assert.equal(job.state, 'done', JSON.stringify(job.items));
    const resultId = job.items[0]!.resultIds[0]!;

    const url = await ipc.invoke(channelFor('imageUrl'), trusted, { kind: 'result', id: resultId });
    assert.deepEqual(url, { ok: true, result: `duoscale-img://result/${resultId}` });
    const images = createImageHandler(service);
    const res = await images(new Request(url.result));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    assert.deepEqual([meta.width, meta.height], [96, 64]);
    assert.equal((await images(new Request(`duoscale-img://result/${resultId + 1}`))).status, 404);
    assert.equal((await images(new Request(`duoscale-img://original/${encodeURIComponent(photo)}`))).status, 404);
    assert.equal(imageRefFromUrl('duoscale-img://result/1?path=/etc/passwd'), null);
    assert.deepEqual(imageRefFromUrl('duoscale-img://thumb/12'), { kind: 'thumb', id: 12 });

    const file = await exportCatalog(ctx);
    assert.equal(file, path.join(dir, 'export.json'));
    const exported = JSON.parse(await readFile(file!, 'utf8'));
    assert.equal(exported.results.length, 1);
    assert.equal(exported.results[0].id, resultId);
  });
});

describe('duoscale://app protocol handler (main/protocol.ts)', () => {
  it('serves the renderer with the window CSP and nothing outside it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'duoscale-proto-'));
    try {
      const root = path.join(dir, 'renderer');
      await mkdir(path.join(root, 'assets'), { recursive: true });
      await writeFile(path.join(root, 'index.html'), '<!doctype html><title>Duoscale</title>');
      await writeFile(path.join(root, 'assets', 'a.js'), 'export {}');
      await writeFile(path.join(dir, 'secret.txt'), 'secret');
      const app = createAppHandler(root);
      const index = await app(new Request('duoscale://app/index.html'));
      assert.equal(index.status, 200);
      assert.equal(index.headers.get('content-security-policy'), windowCsp());
      assert.match(await index.text(), /<title>Duoscale/);
      assert.equal((await app(new Request('duoscale://app/assets/a.js'))).headers.get('content-type'), 'text/javascript; charset=utf-8');
      for (const u of ['duoscale://app/%2e%2e/secret.txt', 'duoscale://app/..%2fsecret.txt', 'duoscale://other/index.html', 'duoscale://app/assets/none.js']) {
        const r = await app(new Request(u));
        assert.equal(r.status, 404, u);
        assert.doesNotMatch(await r.text(), /^secret$/);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('build:main bundles and the preload (run in node:vm with a fakeElectron module)', () => {
  let out: string;
  let preloadCode: string;

  before(async () => {
    out = await mkdtemp(path.join(os.tmpdir(), 'duoscale-build-main-'));
    await promisify(execFile)(process.execPath, [path.join(ROOT, 'scripts', 'build-main.mjs'), '--out', out], { cwd: ROOT });
    preloadCode = await readFile(path.join(out, 'preload.cjs'), 'utf8');
  });

  after(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it('writes an ESM main.js that keeps electron and the native packages external', async () => {
    const main = await readFile(path.join(out, 'main.js'), 'utf8');
    for (const pkg of ['electron', 'sharp', 'better-sqlite3', 'onnxruntime-node']) {
      assert.match(main, new RegExp(`from ["']${pkg}["']`), `${pkg} must be imported, not bundled`);
    }
    assert.match(main, /registerSchemesAsPrivileged/);
    assert.match(main, /requestSingleInstanceLock/);
  });

  /** Runs the bundled preload against a fake electron module; returns what it exposed. */
  function runPreload(invoke: (channel: string, arg: unknown) => Promise<unknown>) {
    const exposed: Record<string, any> = {};
    const rendererListeners = new Map<string, (event: unknown, payload: unknown) => void>();
    const windowListeners = new Map<string, (e: any) => void>();
    const fakeElectron = {
      contextBridge: {
        exposeInMainWorld: (key: string, value: unknown) => {
          exposed[key] = value;
        },
      },
      ipcRenderer: {
        invoke,
        on: (channel: string, fn: (event: unknown, payload: unknown) => void) => rendererListeners.set(channel, fn),
      },
      webUtils: { getPathForFile: (f: { fakePath: string }) => f.fakePath },
    };
    const requireFake = (id: string) => {
      if (id === 'electron') return fakeElectron;
      throw new Error(`sandboxed preload required "${id}"`);
    };
    const module = { exports: {} };
    vm.runInNewContext(preloadCode, {
      require: requireFake,
      module,
      exports: module.exports,
      console,
      window: { addEventListener: (type: string, fn: (e: any) => void) => windowListeners.set(type, fn) },
    });
    return { exposed, rendererListeners, windowListeners };
  }

  it('exposes exactly the DuoscaleApi as window.duoscale, and nothing else', () => {
    const { exposed } = runPreload(async () => ({ ok: true, result: null }));
    assert.deepEqual(Object.keys(exposed), ['duoscale']);
    assert.deepEqual(Object.keys(exposed.duoscale).sort(), [...API_METHODS, 'onEvent'].sort());
    assert.ok(Object.isFrozen(exposed.duoscale));
    for (const k of ['send', 'invoke', 'on', 'ipcRenderer', 'require']) assert.equal(exposed.duoscale[k], undefined, k);
  });

  it('calls go through the real handlers, errors reject with the core message, events reach listeners', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'duoscale-preload-'));
    const service = await DuoscaleService.open({ home: path.join(dir, 'home'), builtinModels: FIXTURES });
    try {
      const ipc = new FakeIpcMain();
      const ctx = createContext({
        ipc,
        service,
        shell: { showOpenDialog: async () => ({ canceled: true, filePaths: [] }), showSaveDialog: async () => ({ canceled: true }) },
        isTrusted: (e) => isTrustedSender(e, (id) => id === OUR_WEBCONTENTS),
      });
      registerAll(ctx);
      const { exposed, rendererListeners, windowListeners } = runPreload((channel, arg) => ipc.invoke(channel, trusted, arg));
      const api = exposed.duoscale;

      const settings = await api.settingsSet({ quality: 66 });
      assert.equal(settings.quality, 66);
      assert.equal((await service.settingsGet()).quality, 66);
      assert.deepEqual((await api.modelsList()).map((m: { id: string }) => m.id), ['tiny-x4']);
      assert.equal(await api.pickFiles({ folders: false, multiple: false }), null);
      await assert.rejects(api.settingsSet({ quality: 0 }), /settingsSet: "quality" must be between 1 and 100/);

      const got: unknown[] = [];
      const off = api.onEvent((e: unknown) => got.push(e));
      const forward = rendererListeners.get(EVENT_CHANNEL)!;
      forward({}, { type: 'catalog-changed' });
      // A file dropped on the window becomes an open-paths event with its real path.
      const drop = windowListeners.get('drop')!;
      let prevented = false;
      drop({
        dataTransfer: { types: ['Files'], files: [{ fakePath: '/photos/x.jpg' }, { fakePath: '' }] },
        preventDefault: () => { prevented = true; },
      });
      off();
      forward({}, { type: 'models-changed' });
      // JSON round trip: objects made inside the vm context have that context's prototypes.
      assert.deepEqual(JSON.parse(JSON.stringify(got)), [{ type: 'catalog-changed' }, { type: 'open-paths', paths: ['/photos/x.jpg'], source: 'drop' }]);
      assert.equal(prevented, true);
    } finally {
      await service.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
