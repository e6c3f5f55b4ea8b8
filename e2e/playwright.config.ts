// Playwright drives Debian's Chromium (never a downloaded browser) against the web mode
// (`duoscale serve`), one fresh server and DUOSCALE_HOME per test. Screenshots of every
// view land in test-results/screens/.
import { defineConfig } from '@playwright/test';
import { existsSync } from 'node:fs';

const chromium = process.env.DUOSCALE_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!chromium) {
  throw new Error('e2e needs Debian\'s Chromium at /usr/bin/chromium. Install it with `apt-get install -y chromium`, or set DUOSCALE_CHROMIUM to a Chromium binary.');
}

export default defineConfig({
  testDir: '.',
  // *.spec.ts: the web-mode suite; electron.test.ts: the Electron launch test (skips itself without the binary).
  testMatch: ['**/*.spec.ts', '**/electron.test.ts'],
  outputDir: '../test-results/e2e',
  // One at a time: each test runs a real inference server, and CI has two cores.
  workers: 1,
  fullyParallel: false,
  timeout: 90_000,
  expect: { timeout: 20_000 },
  retries: 0,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    launchOptions: { executablePath: chromium, args: ['--no-sandbox', '--disable-gpu'] },
    viewport: { width: 1400, height: 860 },
    deviceScaleFactor: 1,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
