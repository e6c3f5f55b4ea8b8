// DuoscaleService + JobQueue against the real engine (onnxruntime, sharp, SQLite) and the
// fixture model in app/test/fixtures.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { DuoscaleEvent, JobSummary } from './api.ts';
import { sha256File } from './catalog/db.ts';
import { makeBadInputs, makePhoto } from './jobs/test-photos.ts';
import { DuoscaleService } from './service.ts';

const FIXTURES = path.resolve(import.meta.dirname, 'test', 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'duoscale-service-'));
let service: DuoscaleService;
const events: DuoscaleEvent[] = [];

before(async () => {
  service = await DuoscaleService.open({ home: path.join(tmp, 'home'), builtinModels: FIXTURES });
  service.onEvent((e) => events.push(e));
});
after(async () => {
  await service.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Every file under dir, relative, sorted. */
function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

test('recursive folder batch keeps the structure, reports bad files by name and goes on', async () => {
  const src = path.join(tmp, 'in1');
  await makePhoto(path.join(src, 'a.jpg'), 40, 32, 1);
  await makePhoto(path.join(src, 'trip', 'b.png'), 36, 28, 2);
  await makePhoto(path.join(src, 'trip', 'day 2', 'c.webp'), 32, 24, 3);
  const bad = await makeBadInputs(path.join(src, 'broken'), { huge: true });
  fs.writeFileSync(path.join(src, 'readme.txt'), 'not picked up from folders');
  const out = path.join(tmp, 'out1');
  events.length = 0;
  const job = await service.batch({ inputs: [src], outputDir: out, recursive: true });
  assert.equal(job.total, 7);
  const final = await service.waitJob(job.id);
  assert.equal(final.state, 'done');
  assert.equal(final.done, 3);
  assert.equal(final.failed, 4);
  assert.equal(final.progress, 1);
  assert.deepEqual(listFiles(out), ['a_x4_tiny-x4.jpg', 'trip/b_x4_tiny-x4.png', 'trip/day 2/c_x4_tiny-x4.webp']);
  const meta = await sharp(path.join(out, 'trip/day 2/c_x4_tiny-x4.webp')).metadata();
  assert.deepEqual([meta.width, meta.height], [128, 96]);
  const errors = Object.fromEntries(final.items.filter((i) => i.state === 'failed').map((i) => [path.basename(i.input), i.error ?? '']));
  for (const [name, re] of [['zero.jpg', /empty/], ['notes.jpg', /not an image/], ['truncated.jpg', /truncated|incomplete|damaged|cut off/i], ['huge.png', /pixel|too large|limit/i]] as const) {
    const file = Object.values(bad).find((f) => path.basename(f) === name) as string;
    assert.ok(errors[name]?.includes(file), `${name}: error does not name the file: ${errors[name]}`);
    assert.match(errors[name], re, `${name}: ${errors[name]}`);
  }
  // Events: per tile with an ETA, per item, per job.
  const tiles = events.filter((e): e is Extract<DuoscaleEvent, { type: 'tile' }> => e.type === 'tile');
  assert.ok(tiles.length >= 3, 'tile events');
  assert.ok(tiles.every((t) => t.jobId === job.id && t.tile >= 1 && t.tile <= t.tiles));
  assert.ok(tiles.some((t) => typeof t.etaSeconds === 'number' && t.etaSeconds >= 0), 'some tile event carries an ETA');
  const items = events.filter((e) => e.type === 'item');
  assert.ok(items.length >= 14, 'running + finished event per item');
  assert.ok(events.some((e) => e.type === 'job' && e.job.state === 'running'));
  // The catalog recorded the failures too (with the file named).
  const failed = await service.catalogList({ status: 'failed' });
  assert.equal(failed.total, 4);
  assert.ok(failed.results.every((r) => r.error && r.error.includes(r.imagePath)));
  assert.deepEqual(listFiles(out).filter((f) => f.includes('.tmp')), []);
});

test('identical work is skipped unless forced; variations give one output per seed', async () => {
  const src = await makePhoto(path.join(tmp, 'in2', 'p.png'), 32, 32, 4);
  const out = path.join(tmp, 'out2');
  const first = await service.waitJob((await service.batch({ inputs: [src], outputDir: out })).id);
  assert.equal(first.done, 1);
  const outFile = first.items[0].outputs[0];
  const mtime = fs.statSync(outFile).mtimeMs;
  const again = await service.waitJob((await service.batch({ inputs: [src], outputDir: out })).id);
  assert.equal(again.skipped, 1);
  assert.deepEqual(again.items[0].outputs, [outFile]);
  assert.deepEqual(again.items[0].resultIds, first.items[0].resultIds);
  assert.equal(fs.statSync(outFile).mtimeMs, mtime, 'skipped work does not touch the file');
  const forced = await service.waitJob((await service.batch({ inputs: [src], outputDir: out, options: { force: true } })).id);
  assert.equal(forced.done, 1);
  assert.deepEqual(forced.items[0].outputs, [outFile], 'a redo replaces its own earlier output');
  assert.equal((await service.catalogList({ search: 'in2' })).total, 1, 'the replaced record is gone');

  const vars = await service.waitJob((await service.batch({ inputs: [src], outputDir: out, options: { variations: 2, seed: 10 } })).id);
  assert.equal(vars.items[0].outputs.length, 2);
  const [v1, v2] = vars.items[0].outputs;
  assert.match(path.basename(v1), /_s10\.png$/);
  assert.match(path.basename(v2), /_s11\.png$/);
  const [r1, r2] = await Promise.all(vars.items[0].resultIds.map((id) => service.catalog.getResult(id)));
  assert.deepEqual([r1?.params.seed, r2?.params.seed], [10, 11]);
  const raw = async (f: string) => (await sharp(f).raw().toBuffer()).toString('hex');
  assert.notEqual(await raw(v1), await raw(v2), 'different seeds give different pixels');

  // The restore option is part of the identity of a result only when it is on: restore 0 is the
  // same work as before the option existed, restore 1 is new work and is recorded.
  const off = await service.waitJob((await service.batch({ inputs: [src], outputDir: out, options: { restore: 0 } })).id);
  assert.equal(off.skipped, 1, 'restore 0 = the earlier plain result');
  const on = await service.waitJob((await service.batch({ inputs: [src], outputDir: out, options: { restore: 1, naming: '{name}_r' } })).id);
  assert.equal(on.done, 1);
  assert.equal((await service.catalog.getResult(on.items[0].resultIds[0]))?.params.restore, 1);
  const onAgain = await service.waitJob((await service.batch({ inputs: [src], outputDir: out, options: { restore: 1, naming: '{name}_r' } })).id);
  assert.equal(onAgain.skipped, 1);
  // The "repair by default" setting stands in for a job that does not say; a job that says 0 wins.
  await service.settingsSet({ repair: true });
  try {
    const byDefault = await service.waitJob((await service.batch({ inputs: [src], outputDir: out, options: { naming: '{name}_r' } })).id);
    assert.equal(byDefault.skipped, 1, 'the same work as restore 1');
    const saysNo = await service.waitJob((await service.batch({ inputs: [src], outputDir: out, options: { restore: 0 } })).id);
    assert.equal(saysNo.skipped, 1, 'restore 0 is the plain result');
    assert.equal((await service.catalog.getResult(saysNo.items[0].resultIds[0]))?.params.restore, undefined);
  } finally {
    await service.settingsSet({ repair: false });
  }
});

test('cancel stops the running photo between tiles and leaves no partial output', async () => {
  const src = path.join(tmp, 'in3');
  for (let i = 0; i < 3; i++) await makePhoto(path.join(src, `big${i}.png`), 128, 96, 20 + i);
  const out = path.join(tmp, 'out3');
  events.length = 0;
  const job = await service.batch({ inputs: [src], outputDir: out, options: { tile: 16 } });
  await new Promise<void>((resolve) => {
    const off = service.onEvent((e) => { if (e.type === 'tile' && e.tile >= 2) { off(); resolve(); } });
  });
  const t0 = Date.now();
  await service.cancel({ jobId: job.id });
  const final = await service.waitJob(job.id);
  const stopMs = Date.now() - t0;
  assert.equal(final.state, 'cancelled');
  assert.deepEqual(final.items.map((i) => i.state), ['cancelled', 'cancelled', 'cancelled']);
  const tilesAfter = events.filter((e) => e.type === 'tile' && e.input.endsWith('big0.png'));
  const total = (tilesAfter[0] as { tiles: number }).tiles;
  assert.ok(tilesAfter.length < total, `stopped before the last tile (${tilesAfter.length} of ${total})`);
  assert.ok(stopMs < 5000, `cancel took ${stopMs} ms`);
  assert.deepEqual(listFiles(out), [], 'nothing written');
  assert.deepEqual(fs.readdirSync(out).filter((f) => f.startsWith('.duoscale')), [], 'no staging left');
  assert.equal((await service.catalogList({ search: 'in3' })).total, 0, 'no record of unfinished work');
});

test('pause stops at once; resume finishes the job', async () => {
  const src = path.join(tmp, 'in4');
  await makePhoto(path.join(src, 'a.png'), 96, 64, 30);
  await makePhoto(path.join(src, 'b.png'), 40, 32, 31);
  const out = path.join(tmp, 'out4');
  const job = await service.batch({ inputs: [src], outputDir: out, options: { tile: 16 } });
  await new Promise<void>((resolve) => {
    const off = service.onEvent((e) => { if (e.type === 'tile' && e.jobId === job.id) { off(); resolve(); } });
  });
  await service.pause({ jobId: job.id });
  const paused = await service.waitJob(job.id);
  assert.equal(paused.state, 'paused');
  assert.deepEqual(paused.items.map((i) => i.state), ['pending', 'pending']);
  assert.deepEqual(listFiles(out), []);
  assert.equal((await service.jobs()).find((j) => j.id === job.id)?.state, 'paused');
  await service.resume({ jobId: job.id });
  const done = await service.waitJob(job.id);
  assert.equal(done.state, 'done');
  assert.equal(done.done, 2);
  assert.deepEqual(listFiles(out), ['a_x4_tiny-x4.png', 'b_x4_tiny-x4.png']);
});

test('an unwritable output folder is a clear error naming the folder', async () => {
  const src = await makePhoto(path.join(tmp, 'in5', 'a.jpg'), 16, 16, 5);
  const blocker = path.join(tmp, 'a-file');
  fs.writeFileSync(blocker, 'x');
  const out = path.join(blocker, 'out');
  const final = await service.waitJob((await service.batch({ inputs: [src], outputDir: out })).id);
  assert.equal(final.state, 'failed');
  assert.match(final.items[0].error ?? '', new RegExp(`${out.replace(/[/.]/g, '\\$&')}: cannot write to the output folder .*Choose another output folder`));
  if (process.getuid?.() !== 0) {
    const ro = path.join(tmp, 'read-only');
    fs.mkdirSync(ro, { mode: 0o555 });
    const r = await service.waitJob((await service.batch({ inputs: [src], outputDir: ro })).id);
    assert.match(r.items[0].error ?? '', /permission denied/);
  }
});

test('library: image paths, thumbnails, image URLs, delete never touches the original', async () => {
  const src = await makePhoto(path.join(tmp, 'in6', 'lib.jpg'), 48, 32, 6);
  const before = sha256File(src);
  const out = path.join(tmp, 'out6');
  const done = await service.waitJob((await service.batch({ inputs: [src], outputDir: out })).id);
  const resultId = done.items[0].resultIds[0];
  const result = service.catalog.getResult(resultId)!;
  assert.equal(await service.imagePath({ kind: 'result', id: resultId }), result.outputPath);
  assert.equal(await service.imagePath({ kind: 'original', id: result.imageId }), src);
  const thumb = await service.imagePath({ kind: 'thumb', id: resultId });
  assert.ok(thumb?.startsWith(path.join(tmp, 'home', 'thumbs')));
  const tm = await sharp(thumb!).metadata();
  assert.equal(tm.format, 'webp');
  assert.equal(Math.max(tm.width!, tm.height!), 192, 'thumbnail of the 4x output, never enlarged past it');
  assert.equal(await service.imageUrl({ kind: 'thumb', id: resultId }), `duoscale-img://thumb/${resultId}`);
  await assert.rejects(service.imageUrl({ kind: 'result', id: 999999 }), /no result image with id 999999/);
  assert.equal(await service.imagePath({ kind: 'original', id: 999999 }), null);
  const img = await service.catalogImage({ imageId: result.imageId });
  assert.equal(img.image.width, 48);
  assert.equal(img.image.sha256, before);
  await assert.rejects(service.revealInFolder({ path: '/etc/passwd' }), /catalog knows no photo/);
  await service.deleteResult({ resultId });
  assert.equal(fs.existsSync(result.outputPath!), false, 'output deleted');
  assert.equal(sha256File(src), before, 'original untouched');
  assert.equal(await service.imagePath({ kind: 'result', id: resultId }), null);
});

test('models: list with default, import, set default, remove; settings events', async () => {
  const list = await service.modelsList();
  assert.deepEqual(list.map((m) => [m.id, m.isDefault, m.builtin]), [['tiny-x4', true, true]]);
  const dir = path.join(tmp, 'export');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(FIXTURES, 'tiny-x4.onnx'), path.join(dir, 'mine.onnx'));
  const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tiny-x4.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'mine.json'), JSON.stringify({ ...manifest, name: 'mine', onnx: 'mine.onnx', task: 'face' }));
  events.length = 0;
  const info = await service.modelImport({ onnxPath: path.join(dir, 'mine.onnx') });
  assert.equal(info.id, 'mine');
  assert.equal(info.builtin, false);
  assert.ok(events.some((e) => e.type === 'models-changed'));
  const s = await service.modelSetDefault({ id: 'mine' });
  assert.equal(s.defaultModel, 'mine');
  assert.equal((await service.modelsList()).find((m) => m.isDefault)?.id, 'mine');
  assert.ok(events.some((e) => e.type === 'settings-changed' && e.settings.defaultModel === 'mine'));
  await assert.rejects(service.modelSetDefault({ id: 'nope' }), /no model named "nope"/);
  await assert.rejects(service.modelRemove({ id: 'tiny-x4' }), /ships with the app/);
  await service.modelRemove({ id: 'mine' });
  assert.equal((await service.settingsGet()).defaultModel, '', 'removing the default model resets the default');
  assert.equal((await service.modelsList()).find((m) => m.isDefault)?.id, 'tiny-x4');
  await assert.rejects(service.settingsSet({ quality: 0 }), /"quality" must be between 1 and 100/);
  assert.equal((await service.settingsSet({ quality: 77 })).quality, 77);
});

test('jobs() lists jobs newest first with their items', async () => {
  const jobs: JobSummary[] = await service.jobs();
  assert.ok(jobs.length >= 5);
  assert.ok(jobs.every((j, i) => i === 0 || j.createdAt <= jobs[i - 1].createdAt));
  assert.ok(jobs.every((j) => j.items.length === j.total));
});

test('output folder = input folder: earlier outputs are not taken as new photos', async () => {
  const src = path.join(tmp, 'in7');
  await makePhoto(path.join(src, 'a.png'), 24, 16, 7);
  const first = await service.waitJob((await service.batch({ inputs: [src], outputDir: src })).id);
  assert.equal(first.done, 1);
  const second = await service.waitJob((await service.batch({ inputs: [src], outputDir: src })).id);
  assert.equal(second.total, 1, 'a_x4_tiny-x4.png is not a new input');
  assert.equal(second.skipped, 1);
});

test('closing the app mid-job leaves it resumable; autoResume on the next start finishes it', async () => {
  const home = path.join(tmp, 'home-restart');
  const src = path.join(tmp, 'in8');
  await makePhoto(path.join(src, 'a.png'), 96, 64, 8);
  await makePhoto(path.join(src, 'b.png'), 24, 16, 9);
  const out = path.join(tmp, 'out8');
  const s1 = await DuoscaleService.open({ home, builtinModels: FIXTURES });
  const job = await s1.batch({ inputs: [src], outputDir: out, options: { tile: 16 } });
  await new Promise<void>((resolve) => {
    const off = s1.onEvent((e) => { if (e.type === 'tile') { off(); resolve(); } });
  });
  await s1.close();
  assert.deepEqual(listFiles(out), []);
  const s2 = await DuoscaleService.open({ home, builtinModels: FIXTURES, autoResume: true });
  try {
    const done = await s2.waitJob(job.id);
    assert.equal(done.state, 'done');
    assert.equal(done.done, 2);
    assert.deepEqual(listFiles(out), ['a_x4_tiny-x4.png', 'b_x4_tiny-x4.png']);
  } finally {
    await s2.close();
  }
});
