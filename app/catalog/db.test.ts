import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { Catalog, canonicalJson, hashText, sha256File, type NewResult } from './db.ts';
import { LATEST_SCHEMA_VERSION } from './migrations/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'duoscale-catalog-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => new Catalog(path.join(tmp, `c${++n}`, 'catalog.sqlite'));
const DEAD = `${os.hostname()}:999999999:dead`;

function image(c: Catalog, p = '/photos/a.jpg', sha = 'a'.repeat(64)): number {
  return c.upsertImage({ path: p, sha256: sha, bytes: 10, width: 4, height: 3, format: 'jpeg', metadata: { exif: true, xmp: false, hasAlpha: false }, mtimeMs: 1 });
}

function result(c: Catalog, imageId: number, targetDir: string, over: Partial<NewResult> = {}) {
  return c.startResult({ imageId, jobItemId: null, model: 'm', modelSha256: 'b'.repeat(64), params: { seed: 0, scale: 4 }, paramsHash: 'h1', seed: 0, targetDir, ...over });
}

/** Writes `text` as the staged output of a result and takes it through the whole commit protocol. */
function commit(c: Catalog, id: number, stagingDir: string, finalPath: string, text: string, stopBefore?: 'rename' | 'done') {
  fs.mkdirSync(stagingDir, { recursive: true });
  const staged = path.join(stagingDir, path.basename(finalPath));
  fs.writeFileSync(staged, text);
  c.markCommitting(id, { stagedPath: staged, outputPath: finalPath, sha256: sha256File(staged), bytes: text.length, width: 16, height: 12, ms: 5 });
  if (stopBefore === 'rename') return;
  fs.renameSync(staged, finalPath);
  if (stopBefore === 'done') return;
  c.markDone(id);
  fs.rmSync(stagingDir, { recursive: true, force: true });
}

test('migrations: WAL, user_version, STRICT tables, reopen is a no-op, newer catalogs refused', () => {
  const c = fresh();
  assert.equal(c.schemaVersion, LATEST_SCHEMA_VERSION);
  assert.equal(c.db.pragma('journal_mode', { simple: true }), 'wal');
  const tables = c.db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all() as { name: string; sql: string }[];
  for (const t of ['images', 'results', 'models', 'training_runs', 'jobs', 'job_items']) {
    const row = tables.find((x) => x.name === t);
    assert.ok(row, `missing table ${t}`);
    assert.match(row.sql, /\) STRICT$/, `${t} is not STRICT`);
  }
  // STRICT really rejects a wrong type.
  assert.throws(() => c.db.prepare("INSERT INTO images (path, sha256, bytes, added_at) VALUES ('p', 's', 'ten', 'now')").run(), /cannot store TEXT value in INTEGER column/);
  const file = c.file;
  c.close();
  const again = new Catalog(file);
  assert.equal(again.schemaVersion, LATEST_SCHEMA_VERSION);
  again.close();
  const raw = new Database(file);
  raw.pragma(`user_version = ${LATEST_SCHEMA_VERSION + 10}`);
  raw.close();
  assert.throws(() => new Catalog(file), /newer than this Duoscale understands/);
});

test('canonical params hash ignores key order', () => {
  assert.equal(hashText(canonicalJson({ a: 1, b: { c: 2, d: [1, 2] } })), hashText(canonicalJson({ b: { d: [1, 2], c: 2 }, a: 1 })));
  assert.notEqual(hashText(canonicalJson({ a: 1 })), hashText(canonicalJson({ a: 2 })));
});

test('commit protocol: done results are found as identical work only while the output is intact', () => {
  const c = fresh();
  const out = path.join(tmp, `out${n}`);
  fs.mkdirSync(out);
  const img = image(c);
  const r = result(c, img, out);
  assert.match(path.basename(r.stagingDir), /^\.duoscale-\d+\.tmp$/);
  commit(c, r.id, r.stagingDir, path.join(out, 'a_x4.jpg'), 'pixels');
  const hit = c.findIdentical('a'.repeat(64), 'm', 'h1', out);
  assert.equal(hit?.id, r.id);
  assert.equal(hit?.outputPath, path.join(out, 'a_x4.jpg'));
  assert.equal(c.findIdentical('a'.repeat(64), 'm', 'h2', out), null, 'other params are not identical');
  assert.equal(c.findIdentical('a'.repeat(64), 'm', 'h1', path.join(out, 'elsewhere')), null, 'other target folder is not identical');
  fs.writeFileSync(path.join(out, 'a_x4.jpg'), 'changd'); // same size, other bytes
  assert.equal(c.findIdentical('a'.repeat(64), 'm', 'h1', out), null, 'a changed output is not reused');
  fs.rmSync(path.join(out, 'a_x4.jpg'));
  assert.equal(c.findIdentical('a'.repeat(64), 'm', 'h1', out), null, 'a deleted output is not reused');
  c.close();
});

test('a newer result on the same output path replaces the older record', () => {
  const c = fresh();
  const out = path.join(tmp, `out${n}`);
  fs.mkdirSync(out);
  const img = image(c);
  const r1 = result(c, img, out);
  commit(c, r1.id, r1.stagingDir, path.join(out, 'a.jpg'), 'one');
  const r2 = result(c, img, out);
  commit(c, r2.id, r2.stagingDir, path.join(out, 'a.jpg'), 'two!');
  assert.equal(c.getResult(r1.id), null);
  assert.equal(c.getResult(r2.id)?.status, 'done');
  assert.equal(c.outputImagePath(path.join(out, 'a.jpg')), '/photos/a.jpg');
  c.close();
});

test('reconcile: dead running results are dropped with their staging folder, committing ones rolled forward, live ones untouched', () => {
  const c = fresh();
  const out = path.join(tmp, `out${n}`);
  fs.mkdirSync(out);
  const img = image(c);
  // 1. died while the engine was writing: partial temp file in the staging folder
  const a = result(c, img, out, { seed: 1 });
  fs.mkdirSync(a.stagingDir);
  fs.writeFileSync(path.join(a.stagingDir, 'half.jpg.tmp'), 'par');
  // 2. died after recording the commit, before the rename
  const b = result(c, img, out, { seed: 2 });
  commit(c, b.id, b.stagingDir, path.join(out, 'b.jpg'), 'bbbb', 'rename');
  // 3. died after the rename, before "done"
  const d = result(c, img, out, { seed: 3 });
  commit(c, d.id, d.stagingDir, path.join(out, 'd.jpg'), 'dddd', 'done');
  // 4. committing, but the staged file vanished and no final file: dropped
  const e = result(c, img, out, { seed: 4 });
  commit(c, e.id, e.stagingDir, path.join(out, 'e.jpg'), 'eeee', 'rename');
  fs.rmSync(e.stagingDir, { recursive: true });
  // 5. a live process's running result
  const live = result(c, img, out, { seed: 5 });
  fs.mkdirSync(live.stagingDir);
  c.db.prepare('UPDATE results SET owner = ? WHERE id IN (?, ?, ?, ?)').run(DEAD, a.id, b.id, d.id, e.id);

  const rep = c.reconcile();
  assert.equal(rep.resultsDropped, 2);
  assert.equal(rep.resultsRolledForward, 2);
  assert.equal(c.getResult(a.id), null);
  assert.equal(fs.existsSync(a.stagingDir), false);
  assert.equal(c.getResult(b.id)?.status, 'done');
  assert.equal(fs.readFileSync(path.join(out, 'b.jpg'), 'utf8'), 'bbbb');
  assert.equal(fs.existsSync(b.stagingDir), false);
  assert.equal(c.getResult(d.id)?.status, 'done');
  assert.equal(c.getResult(e.id), null);
  assert.equal(c.getResult(live.id)?.status, 'running', 'a live process keeps its row');
  assert.equal(fs.existsSync(live.stagingDir), true, 'a live process keeps its staging folder');
  assert.deepEqual(fs.readdirSync(out).sort(), ['.duoscale-' + live.id + '.tmp', 'b.jpg', 'd.jpg']);
  c.close();
});

test('reconcile: jobs of dead processes become paused with their running items pending', () => {
  const c = fresh();
  c.createJob({ id: 'job-1', request: {}, requestHash: 'rh', outputDir: '/o', items: [{ input: '/a.jpg', relativeDir: '', pixels: 1 }, { input: '/b.jpg', relativeDir: '', pixels: 1 }] });
  const [i1, i2] = c.jobItems('job-1');
  c.setJobState('job-1', 'running');
  c.setItemState(i1.id, 'done');
  c.setItemState(i2.id, 'running');
  c.db.prepare('UPDATE jobs SET owner = ?').run(DEAD);
  assert.equal(c.reconcile().jobsInterrupted, 1);
  assert.equal(c.getJob('job-1')?.state, 'paused');
  assert.match(c.getJob('job-1')?.error ?? '', /interrupted/);
  assert.deepEqual(c.jobItems('job-1').map((i) => i.state), ['done', 'pending']);
  assert.equal(c.findResumable('rh')?.id, 'job-1');
  c.close();
});

test('listResults: search, model, status and date filters, paging', () => {
  const c = fresh();
  const out = path.join(tmp, `out${n}`);
  fs.mkdirSync(out);
  const beach = image(c, '/photos/beach_100%.jpg', '1'.repeat(64));
  const city = image(c, '/photos/city.jpg', '2'.repeat(64));
  const r1 = result(c, beach, out, { model: 'general' });
  commit(c, r1.id, r1.stagingDir, path.join(out, 'beach.jpg'), 'x');
  const r2 = result(c, city, out, { model: 'face' });
  c.markFailed(r2.id, 'broken');
  const r3 = result(c, city, out, { model: 'general', seed: 9 });
  c.db.prepare("UPDATE results SET created_at = '2020-01-05T10:00:00.000Z' WHERE id = ?").run(r3.id);
  c.markFailed(r3.id, 'old');

  assert.equal(c.listResults({}).total, 3);
  assert.deepEqual(c.listResults({ search: 'beach' }).results.map((r) => r.id), [r1.id]);
  assert.deepEqual(c.listResults({ search: '100%' }).results.map((r) => r.id), [r1.id], '% is matched literally');
  assert.deepEqual(c.listResults({ search: '0_%' }).results.map((r) => r.id), [], '_ is matched literally');
  assert.deepEqual(c.listResults({ model: 'face' }).results.map((r) => r.id), [r2.id]);
  assert.deepEqual(c.listResults({ status: 'failed' }).results.map((r) => r.id).sort(), [r2.id, r3.id].sort());
  assert.deepEqual(c.listResults({ from: '2020-01-01', to: '2020-01-05' }).results.map((r) => r.id), [r3.id], 'a date-only "to" includes that day');
  assert.deepEqual(c.listResults({ to: '2020-01-04' }).results, []);
  const page = c.listResults({ limit: 1, offset: 1 });
  assert.equal(page.results.length, 1);
  assert.equal(page.total, 3);
  const rec = c.listResults({ status: 'done' }).results[0];
  assert.equal(rec.imagePath, '/photos/beach_100%.jpg');
  assert.equal(rec.outputPath, path.join(out, 'beach.jpg'));
  assert.deepEqual(rec.params, { seed: 0, scale: 4 });
  c.close();
});

test('deleteResult returns the output path and refuses running results', () => {
  const c = fresh();
  const img = image(c);
  const r = result(c, img, '/o');
  assert.throws(() => c.deleteResult(r.id), /still being written/);
  c.markFailed(r.id, 'x');
  assert.equal(c.deleteResult(r.id), null);
  assert.equal(c.getResult(r.id), null);
  c.close();
});

test('training runs and models are recorded', () => {
  const c = fresh();
  c.insertTrainingRun({ id: 'run-1', command: 'student', runDir: '/runs/1', request: { minutes: 1 }, pid: 123 });
  c.updateTrainingRun('run-1', { lastEvent: { event: 'progress', step: 3 } });
  c.updateTrainingRun('run-1', { state: 'done', exportedModel: '/runs/1/m.onnx' });
  const run = c.getTrainingRun('run-1');
  assert.equal(run?.state, 'done');
  assert.deepEqual(run?.lastEvent, { event: 'progress', step: 3 });
  assert.equal(c.trainingRunDetails('run-1')?.exportedModel, '/runs/1/m.onnx');
  c.upsertModel({ id: 'm', name: 'm', task: 'general', scale: 4, sha256: 'x', path: '/m.onnx', builtin: true, manifest: {} });
  c.upsertModel({ id: 'm', name: 'm', task: 'face', scale: 4, sha256: 'x', path: '/m.onnx', builtin: true, manifest: {} });
  assert.equal(c.listModels().length, 1);
  c.close();
});
