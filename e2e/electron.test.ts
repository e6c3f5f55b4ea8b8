// Electron launch test (Playwright's experimental Electron driver, STYLE.md 2.8).
//
// Runs where the Electron binary exists: node_modules/electron/dist (after
// `npx install-electron`), $ELECTRON_OVERRIDE_DIST_PATH, or $DUOSCALE_ELECTRON pointing at
// the executable. Elsewhere (this build machine: ELECTRON_SKIP_BINARY_DOWNLOAD=1) every test
// is skipped and the reason is printed. `require('electron')` is NOT used to find the
// binary: it would try to download it.
//
// Each test gets a fresh data folder, passed both as --user-data-dir and DUOSCALE_HOME, and
// asserts the app really used it (no test touches a real profile).
//
// Needs `npm run build:renderer` (test:e2e does it) and builds dist/main itself.

import { _electron as electron, expect, test } from '@playwright/test';
import type { ElectronApplication, Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(ROOT, 'app', 'test', 'fixtures');

/** The Electron executable, or null with the reason. */
function findElectron(): { path: string | null; why: string } {
  if (process.env.DUOSCALE_ELECTRON) {
    const p = process.env.DUOSCALE_ELECTRON;
    return existsSync(p) ? { path: p, why: '' } : { path: null, why: `DUOSCALE_ELECTRON=${p} does not exist` };
  }
  const pkg = path.join(ROOT, 'node_modules', 'electron');
  const pathTxt = path.join(pkg, 'path.txt');
  if (!existsSync(pathTxt)) {
    return { path: null, why: `${pathTxt} is missing (installed with ELECTRON_SKIP_BINARY_DOWNLOAD=1)` };
  }
  const rel = readFileSync(pathTxt, 'utf8').trim();
  const dist = process.env.ELECTRON_OVERRIDE_DIST_PATH ?? path.join(pkg, 'dist');
  const exe = path.join(dist, rel);
  return existsSync(exe) ? { path: exe, why: '' } : { path: null, why: `${exe} does not exist` };
}

const found = findElectron();
const SKIP_MESSAGE =
  `Electron launch test SKIPPED: no Electron binary (${found.why}). ` +
  'Install it with `npx install-electron` (or set DUOSCALE_ELECTRON) to run it.';

test.describe('Electron app', () => {
  test.skip(!found.path, SKIP_MESSAGE);
  test.describe.configure({ mode: 'serial' });

  let userData: string;
  let app: ElectronApplication;
  let page: Page;

  test.beforeAll(() => {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-main.mjs')], { cwd: ROOT, stdio: 'inherit' });
    if (!existsSync(path.join(ROOT, 'dist', 'renderer', 'index.html'))) {
      throw new Error('dist/renderer is not built: run `npm run build:renderer` first (npm run test:e2e does).');
    }
  });

  test.beforeEach(async () => {
    userData = await mkdtemp(path.join(os.tmpdir(), 'duoscale-electron-'));
    const args = [ROOT, `--user-data-dir=${userData}`];
    // Chromium refuses to run as root with its OS sandbox (CI containers); the renderer's
    // JS sandbox (webPreferences.sandbox) stays on either way.
    if (process.getuid?.() === 0) args.push('--no-sandbox');
    app = await electron.launch({
      executablePath: found.path!,
      args,
      env: { ...process.env, DUOSCALE_HOME: userData, DUOSCALE_MODELS_DIR: FIXTURES } as Record<string, string>,
    });
    page = await app.firstWindow();
    await page.waitForLoadState('domcontentloaded');
  });

  test.afterEach(async () => {
    await app?.close();
    await rm(userData, { recursive: true, force: true });
  });

  test('should open one window on duoscale://app with only window.duoscale exposed', async () => {
    expect(app.windows()).toHaveLength(1);
    expect(page.url()).toMatch(/^duoscale:\/\/app\//);
    const surface = await page.evaluate(() => ({
      keys: Object.keys((window as any).duoscale ?? {}).sort(),
      require: typeof (window as any).require,
      process: typeof (window as any).process,
      ipc: typeof (window as any).ipcRenderer,
    }));
    expect(surface.keys).toContain('enhance');
    expect(surface.keys).toContain('onEvent');
    expect(surface.require).toBe('undefined');
    expect(surface.process).toBe('undefined');
    expect(surface.ipc).toBe('undefined');
    // The window's CSP came from our protocol handler (main/protocol.ts).
    const csp = await page.evaluate(async () => (await fetch(location.href)).headers.get('content-security-policy'));
    expect(csp).toContain("script-src 'self'");
  });

  test('should keep its data in the folder the test gave it', async () => {
    const appUserData = await app.evaluate(({ app }) => app.getPath('userData'));
    expect(appUserData).toBe(path.join(userData, 'electron'));
    const s = await page.evaluate(() => (window as any).duoscale.settingsSet({ quality: 77 }));
    expect(s.quality).toBe(77);
    const onDisk = JSON.parse(await readFile(path.join(userData, 'settings.json'), 'utf8'));
    expect(onDisk.quality).toBe(77);
  });

  test('should refuse to navigate away and to open new windows', async () => {
    await page.evaluate(() => {
      window.location.href = 'https://example.org/';
    }).catch(() => {});
    await page.evaluate(() => window.open('https://example.org/')).catch(() => {});
    await expect.poll(() => page.url()).toMatch(/^duoscale:\/\/app\//);
    expect(app.windows()).toHaveLength(1);
  });

  test('should enhance a photo through the preload and show it over duoscale-img', async () => {
    const photo = path.join(userData, 'photo.png');
    await sharp({ create: { width: 24, height: 16, channels: 3, background: '#a04020' } }).png().toFile(photo);
    const job = await page.evaluate(
      ([p, out]) => (window as any).duoscale.enhance({ path: p, outputDir: out }),
      [photo, path.join(userData, 'out')] as const,
    );
    await expect
      .poll(async () => {
        const jobs = await page.evaluate(() => (window as any).duoscale.jobs());
        return jobs.find((j: { id: string }) => j.id === job.id)?.state;
      }, { timeout: 60_000 })
      .toBe('done');
    const size = await page.evaluate(async (jobId) => {
      const api = (window as any).duoscale;
      const j = (await api.jobs()).find((x: { id: string }) => x.id === jobId);
      const url = await api.imageUrl({ kind: 'result', id: j.items[0].resultIds[0] });
      const img = new Image();
      img.src = url;
      await img.decode();
      return { url, w: img.naturalWidth, h: img.naturalHeight };
    }, job.id);
    expect(size.url).toMatch(/^duoscale-img:\/\/result\/\d+$/);
    expect([size.w, size.h]).toEqual([96, 64]);
  });
});

test('Electron binary present (prints why the Electron tests are skipped)', () => {
  if (!found.path) console.log(SKIP_MESSAGE);
  test.skip(!found.path, SKIP_MESSAGE);
  expect(existsSync(found.path!)).toBe(true);
});
