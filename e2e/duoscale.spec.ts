// End-to-end: the real renderer in Debian's Chromium, the real `duoscale serve`, the real
// engine with the tiny fixture model, a fresh DUOSCALE_HOME per test.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { test, expect } from './helpers/fixtures.ts';
import { DuoscaleApp } from './helpers/app.ts';
import { makeBroken, makeFolder, makePhoto } from './helpers/photos.ts';
import { FIXTURE_MODELS, serve } from './helpers/server.ts';

function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesIn(p)); else out.push(p);
  }
  return out;
}

test('enhance a photo and see it in Compare', async ({ app, page, work }) => {
  const photo = await makePhoto(path.join(work, 'photos', 'IMG_0412.jpg'), { width: 96, height: 64 });
  const out = path.join(work, 'out');
  await app.setOutputFolder(out);

  await app.enhancePhoto(photo);
  // Compare opens by itself when the job is done.
  await expect(page.getByTestId('view-compare')).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId('compare-title')).toHaveText('IMG_0412.jpg');
  const before = page.getByTestId('compare-img-a');
  const after = page.getByTestId('compare-img-b');
  await expect.poll(() => after.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBeGreaterThan(0);
  await expect.poll(() => before.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBeGreaterThan(0);
  const sizes = await page.evaluate(() => {
    const a = document.querySelector<HTMLImageElement>('[data-testid=compare-img-a]')!;
    const b = document.querySelector<HTMLImageElement>('[data-testid=compare-img-b]')!;
    return { a: [a.naturalWidth, a.naturalHeight], b: [b.naturalWidth, b.naturalHeight] };
  });
  expect(sizes.a).toEqual([96, 64]);
  expect(sizes.b).toEqual([384, 256]); // ×4 of the original
  await app.screenshot('compare-slider');

  // 100%: one image pixel per device pixel, snapped to the pixel grid, nearest-neighbour.
  await page.keyboard.press('1');
  await expect(page.getByTestId('zoom-readout')).toContainText('100%');
  const exact = await after.evaluate((img: HTMLImageElement) => {
    const r = img.getBoundingClientRect();
    const dpr = window.devicePixelRatio;
    return { w: r.width * dpr, h: r.height * dpr, nw: img.naturalWidth, nh: img.naturalHeight,
      x: r.left * dpr, rendering: getComputedStyle(img).imageRendering };
  });
  expect(exact.w).toBeCloseTo(exact.nw, 5);
  expect(exact.h).toBeCloseTo(exact.nh, 5);
  expect(Math.abs(exact.x - Math.round(exact.x))).toBeLessThan(1e-6);
  expect(exact.rendering).toBe('pixelated');

  // 400% then side by side: both panes show the same geometry (synchronised zoom and pan).
  await page.keyboard.press('4');
  await page.getByTestId('mode-side').click();
  await page.mouse.move(700, 400);
  const boxes = await page.evaluate(() => ['a', 'b'].map((k) => {
    const img = document.querySelector<HTMLImageElement>(`[data-testid=compare-img-${k}]`)!;
    const pane = img.closest('.pane')!.getBoundingClientRect();
    const r = img.getBoundingClientRect();
    return { x: r.left - pane.left, y: r.top - pane.top, w: r.width, h: r.height };
  }));
  expect(boxes[0]).toEqual(boxes[1]);
  expect(boxes[1].w).toBeCloseTo(384 * 4, 3);
  await app.screenshot('compare-side-by-side-400');

  // X flips A and B.
  await expect(before).toHaveAttribute('src', /\/img\/original\//);
  await page.keyboard.press('x');
  await expect(before).toHaveAttribute('src', /\/img\/result\//);
  await page.keyboard.press('x');
  await expect(before).toHaveAttribute('src', /\/img\/original\//);

  // The Library lists the result with the photo's name.
  await page.keyboard.press('Escape');
  await expect(page.getByTestId('view-library')).toBeVisible();
  await expect(page.getByTestId('library-card')).toHaveCount(1);
  await expect(page.getByTestId('library-card')).toContainText('IMG_0412.jpg');
  await page.getByTestId('library-card').click();
  await app.screenshot('library');
  const outputs = filesIn(out);
  expect(outputs).toHaveLength(1);
  expect(path.basename(outputs[0])).toMatch(/^IMG_0412/);
  expect(filesIn(path.join(work, 'photos'))).toEqual([photo]); // the original folder is untouched
});

test('batch a folder of five with progress to completion', async ({ app, page, work }) => {
  const dir = path.join(work, 'photos', 'trip');
  await makeFolder(dir, 5, { width: 128, height: 96 });
  const out = path.join(work, 'out');

  await app.startBatch([dir], out);
  await expect(app.job().getByTestId('job-item')).toHaveCount(5);

  // Sample the total progress bar until the job ends: it must move through values in between.
  const seen = new Set<number>();
  const progress = app.job().getByTestId('job-progress');
  let shot = false;
  for (let i = 0; i < 1200; i++) {
    const state = await app.job().getAttribute('data-state');
    const value = Number(await progress.getAttribute('aria-valuenow'));
    seen.add(value);
    if (!shot && state === 'running' && value >= 30) { await app.screenshot('batch-running'); shot = true; }
    if (state === 'done' || state === 'failed' || state === 'cancelled') break;
    await page.waitForTimeout(50);
  }
  await app.waitForJobState('done');
  await expect(progress).toHaveAttribute('aria-valuenow', '100');
  await expect(app.job().getByTestId('job-summary')).toContainText('5 of 5');
  await expect(app.job().locator('[data-testid=job-item][data-state=done]')).toHaveCount(5);
  expect([...seen].some((v) => v > 0 && v < 100), `intermediate progress values seen: ${[...seen].join(', ')}`).toBeTruthy();
  await app.screenshot('batch-done');

  const written = filesIn(out);
  expect(written).toHaveLength(5);
  for (const f of written) {
    const meta = await sharp(f).metadata();
    expect([meta.width, meta.height]).toEqual([512, 384]);
  }
  await app.go('library');
  await expect(page.getByTestId('library-count')).toHaveText('5 results');
});

test('cancel a batch in the middle', async ({ app, page, work }) => {
  test.setTimeout(150_000); // a loaded CI machine can be slow; the checks below do not depend on speed
  const dir = path.join(work, 'photos', 'big');
  await makeFolder(dir, 8, { width: 192, height: 144 });
  const out = path.join(work, 'out');

  await app.startBatch([dir], out);
  await expect(app.job().locator('[data-testid=job-item][data-state=done]').first()).toBeVisible({ timeout: 90_000 });

  // Pause: the job holds still (the photo in progress may finish, nothing after it starts).
  await app.job().getByTestId('pause').click();
  await app.waitForJobState('paused');
  const doneAtPause = await app.job().locator('[data-testid=job-item][data-state=done]').count();
  await page.waitForTimeout(1200);
  const doneWhilePaused = await app.job().locator('[data-testid=job-item][data-state=done]').count();
  expect(doneWhilePaused - doneAtPause).toBeLessThanOrEqual(1);
  await expect(app.job()).toHaveAttribute('data-state', 'paused');
  await app.screenshot('batch-paused');
  await app.job().getByTestId('resume').click();
  await app.waitForJobState(/running|queued/);

  await app.job().getByTestId('cancel').click();
  await page.getByTestId('confirm-ok').click();
  await app.waitForJobState('cancelled');
  await app.screenshot('batch-cancelled');

  const done = await app.job().locator('[data-testid=job-item][data-state=done]').count();
  expect(done).toBeGreaterThanOrEqual(1);
  expect(done).toBeLessThan(8);
  await expect(app.job().locator('[data-testid=job-item][data-state=cancelled]').first()).toBeVisible();
  await expect(app.job().getByTestId('job-summary')).toContainText('not processed');
  expect(Number(await app.job().getByTestId('job-progress').getAttribute('aria-valuenow'))).toBeLessThan(100);
  // The job really stopped: nothing more is written, and no partial files are left.
  await page.waitForTimeout(1500);
  await expect(app.job()).toHaveAttribute('data-state', 'cancelled');
  const written = filesIn(out);
  expect(written.filter((f) => /\.tmp|\.part/i.test(f))).toEqual([]);
  expect(written.length).toBe(await app.job().locator('[data-testid=job-item][data-state=done]').count());
});

test('restart the server and find the catalog intact', async ({ app, page, work, home, server }) => {
  const dir = path.join(work, 'photos', 'keep');
  await makeFolder(dir, 2, { width: 96, height: 64 });
  await app.startBatch([dir], path.join(work, 'out'));
  await app.waitForJobState('done');
  await app.go('library');
  await expect(page.getByTestId('library-card')).toHaveCount(2);

  await server.stop();
  const again = await serve(home);
  try {
    const app2 = new DuoscaleApp(page);
    await app2.open(again.url);
    await expect(page.getByTestId('library-count')).toHaveText('2 results');
    await expect(page.getByTestId('library-card')).toHaveCount(2);
    await expect(page.getByTestId('library-card').first().locator('img')).toBeVisible();
    await app2.screenshot('library-after-restart');
    await page.getByTestId('library-card').first().dblclick();
    await expect(page.getByTestId('view-compare')).toBeVisible();
    await expect.poll(() => page.getByTestId('compare-img-b').evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(384);

    // Delete one result: its output goes, the original stays.
    await page.keyboard.press('Escape');
    const out = path.join(work, 'out');
    expect(filesIn(out)).toHaveLength(2);
    await page.getByTestId('library-card').first().click();
    await page.getByTestId('delete-result').click();
    await page.getByTestId('confirm-ok').click();
    await expect(page.getByTestId('library-card')).toHaveCount(1);
    expect(filesIn(out)).toHaveLength(1);
    expect(filesIn(dir)).toHaveLength(2);
  } finally {
    await again.stop();
  }
});

test('a broken file in a batch shows its error while the others finish', async ({ app, page, work }) => {
  const dir = path.join(work, 'photos', 'mixed');
  await makeFolder(dir, 3, { width: 96, height: 64 });
  makeBroken(path.join(dir, 'photo-02b-broken.jpg'));

  // Added by drag and drop this time.
  await app.go('batch');
  await app.dropPaths([dir]);
  await expect(page.getByTestId('batch-inputs')).toContainText(dir);
  await page.getByTestId('batch-output').fill(path.join(work, 'out'));
  // The fixture model has no restore input: the repair option is offered but cannot be ticked.
  await expect(page.getByTestId('batch-restore')).toBeDisabled();
  await page.getByTestId('start-batch').click();
  await app.waitForJobState(/done|failed/);
  await expect(app.job().locator('[data-testid=job-item][data-state=done]')).toHaveCount(3);
  const failed = app.job().locator('[data-testid=job-item][data-state=failed]');
  await expect(failed).toHaveCount(1);
  await expect(failed).toContainText('photo-02b-broken.jpg');
  await expect(failed.getByTestId('item-error')).toContainText('photo-02b-broken.jpg');
  await expect(app.job().getByTestId('job-summary')).toContainText('1 failed');
  await app.screenshot('batch-with-failure');
  expect(filesIn(path.join(work, 'out'))).toHaveLength(3);
});

test('models, settings and training views: list the model, change settings and keep them', async ({ app, page, work }) => {
  await app.go('models');
  await expect(page.getByTestId('model-card')).toHaveCount(1);
  await expect(page.getByTestId('model-card')).toContainText('×4');
  await app.screenshot('models');

  await app.go('settings');
  await page.getByTestId('set-format').selectOption('png');
  await page.getByTestId('set-output').fill(path.join(work, 'elsewhere'));
  await expect(page.getByTestId('set-repair')).not.toBeChecked();
  await page.getByTestId('set-repair').check();
  await page.getByTestId('save-settings').click();
  await expect(page.getByTestId('toast-success')).toContainText('Settings saved');
  await app.screenshot('settings');
  await page.reload();
  await app.go('settings');
  await expect(page.getByTestId('set-format')).toHaveValue('png');
  await expect(page.getByTestId('set-output')).toHaveValue(path.join(work, 'elsewhere'));
  await expect(page.getByTestId('set-repair')).toBeChecked();

  await page.keyboard.press('t');
  await expect(page.getByTestId('view-training')).toBeVisible();
  await app.screenshot('training');

  await page.keyboard.press('?');
  await expect(page.getByRole('dialog', { name: 'Keyboard shortcuts' })).toBeVisible();
  await app.screenshot('shortcuts');
});

test.describe('on a HiDPI screen (devicePixelRatio 2)', () => {
  test.use({ deviceScaleFactor: 2 });

  test('100% in Compare is one image pixel per device pixel', async ({ app, page, work }) => {
    const photo = await makePhoto(path.join(work, 'photos', 'hidpi.jpg'), { width: 80, height: 60 });
    await app.setOutputFolder(path.join(work, 'out'));
    await app.enhancePhoto(photo);
    await expect(page.getByTestId('view-compare')).toBeVisible({ timeout: 60_000 });
    await expect.poll(() => page.getByTestId('compare-img-b').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(320);
    await page.keyboard.press('1');
    const m = await page.getByTestId('compare-img-b').evaluate((img: HTMLImageElement) => {
      const r = img.getBoundingClientRect();
      return { dpr: window.devicePixelRatio, cssW: r.width, devW: r.width * window.devicePixelRatio, x: r.left * window.devicePixelRatio, rendering: getComputedStyle(img).imageRendering };
    });
    expect(m.dpr).toBe(2);
    expect(m.cssW).toBeCloseTo(160, 5); // 320 image pixels = 160 CSS pixels = 320 device pixels
    expect(m.devW).toBeCloseTo(320, 5);
    expect(Math.abs(m.x - Math.round(m.x))).toBeLessThan(1e-6);
    expect(m.rendering).toBe('pixelated');
    await expect(page.getByTestId('zoom-readout')).toContainText('100%');
    await app.screenshot('compare-hidpi-100');
  });
});

test('import a model, make it the default, remove it; a bad import names the file and the fix', async ({ app, page, work }) => {
  // A copy of the fixture model under another name: same weights, its own manifest.
  const dir = path.join(work, 'my-models');
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIXTURE_MODELS, 'tiny-x4.onnx'), path.join(dir, 'portrait-x4.onnx'));
  const manifest = JSON.parse(readFileSync(path.join(FIXTURE_MODELS, 'tiny-x4.json'), 'utf8'));
  writeFileSync(path.join(dir, 'portrait-x4.json'), JSON.stringify({ ...manifest, name: 'portrait-x4', task: 'face', onnx: 'portrait-x4.onnx' }));
  copyFileSync(path.join(FIXTURE_MODELS, 'tiny-x4.onnx'), path.join(dir, 'orphan.onnx')); // no manifest beside it

  await app.go('models');
  await page.getByTestId('import-model').click();
  await app.enterPaths([path.join(dir, 'orphan.onnx')]);
  await expect(page.getByTestId('toast-error')).toContainText('orphan');
  await expect(page.getByTestId('toast-error')).toContainText(/manifest/i);
  await app.screenshot('models-import-error');

  await page.getByTestId('import-model').click();
  await app.enterPaths([path.join(dir, 'portrait-x4.onnx')]);
  await expect(page.getByTestId('model-card')).toHaveCount(2);
  const card = page.getByTestId('model-card').filter({ hasText: 'portrait-x4' });
  await expect(card).toContainText('Imported');
  await card.getByTestId('set-default').click();
  await expect(card).toContainText('Default');
  await app.screenshot('models-imported');

  // Switch the default back, then remove the imported model.
  await page.getByTestId('model-card').filter({ hasText: 'tiny-x4' }).getByTestId('set-default').click();
  await card.getByRole('button', { name: 'Remove' }).click();
  await page.getByTestId('confirm-ok').click();
  await expect(page.getByTestId('model-card')).toHaveCount(1);
});
