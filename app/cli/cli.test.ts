// The real `duoscale` program as a child process: node bin/duoscale.mjs ..., with its own
// DUOSCALE_HOME and the fixture model as the shipped model folder.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { sha256File } from '../catalog/db.ts';
import { makeBadInputs, makePhoto } from '../jobs/test-photos.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'duoscale.mjs');
const FIXTURES = path.join(ROOT, 'app', 'test', 'fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'duoscale-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function env(home: string): NodeJS.ProcessEnv {
  return { ...process.env, DUOSCALE_HOME: home, DUOSCALE_MODELS_DIR: FIXTURES, NODE_OPTIONS: '' };
}

function run(args: string[], opts: { home: string; cwd?: string; cmd?: string[]; onStderr?: (text: string, kill: () => void) => void }): Promise<Run> {
  const [cmd, ...pre] = opts.cmd ?? [process.execPath, BIN];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...pre, ...args], { cwd: opts.cwd ?? tmp, env: env(opts.home), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => {
      stderr += d;
      opts.onStderr?.(stderr, () => child.kill('SIGKILL'));
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The catalog matches the disk: done results' outputs exist with their hash, no other files, nothing partial. */
function assertConsistent(home: string, out: string): { done: number } {
  const db = new Database(path.join(home, 'catalog.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT id, status, output_path, output_sha256 FROM results').all() as { id: number; status: string; output_path: string | null; output_sha256: string | null }[];
    const files = (fs.readdirSync(out, { recursive: true }) as string[]).map((f) => path.join(out, f));
    const leftovers = files.filter((f) => /\.tmp$|\.duoscale-/.test(f));
    assert.deepEqual(leftovers, [], 'no temp files or staging folders');
    const outputs = files.filter((f) => fs.statSync(f).isFile());
    const done = rows.filter((r) => r.status === 'done');
    assert.deepEqual(rows.filter((r) => r.status === 'running' || r.status === 'committing'), [], 'no unfinished results');
    for (const r of done) {
      assert.ok(r.output_path && fs.existsSync(r.output_path), `result ${r.id}: output missing`);
      assert.equal(sha256File(r.output_path), r.output_sha256, `result ${r.id}: output hash differs`);
    }
    assert.deepEqual(outputs.sort(), done.map((r) => r.output_path).sort(), 'every output file has a result and vice versa');
    return { done: done.length };
  } finally {
    db.close();
  }
}

test('duoscale enhance photo.jpg -o out/ works on the default model (relative paths)', async () => {
  const home = path.join(tmp, 'h1');
  const dir = path.join(tmp, 'work1');
  await makePhoto(path.join(dir, 'photo.jpg'), 40, 30, 1);
  const r = await run(['enhance', 'photo.jpg', '-o', 'out/'], { home, cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const out = path.join(dir, 'out', 'photo_x4_tiny-x4.jpg');
  assert.equal(r.stdout.trim(), out);
  assert.match(r.stderr, /1 enhanced/);
  const m = await sharp(out).metadata();
  assert.deepEqual([m.width, m.height, m.format], [160, 120, 'jpeg']);
  // Same command again: identical work is skipped; --force redoes it.
  const again = await run(['enhance', 'photo.jpg', '-o', 'out/'], { home, cwd: dir });
  assert.equal(again.code, 0);
  assert.match(again.stderr, /1 already done \(skipped/);
  const forced = await run(['enhance', 'photo.jpg', '-o', 'out/', '--force', '--scale', '2', '--format', 'png'], { home, cwd: dir });
  assert.equal(forced.code, 0, forced.stderr);
  const m2 = await sharp(path.join(dir, 'out', 'photo_x2_tiny-x4.png')).metadata();
  assert.deepEqual([m2.width, m2.height], [80, 60]);
  assertConsistent(home, path.join(dir, 'out'));
});

test('npx duoscale runs the same program from the repo root', async () => {
  const home = path.join(tmp, 'h-npx');
  const photo = await makePhoto(path.join(tmp, 'npx', 'p.png'), 24, 16, 2);
  const r = await run(['enhance', photo, '-o', path.join(tmp, 'npx', 'out')], { home, cwd: ROOT, cmd: ['npx', '--no-install', 'duoscale'] });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(tmp, 'npx', 'out', 'p_x4_tiny-x4.png')));
});

test('bad files fail one by one with the file and the fix; the rest is done; exit code 1', async () => {
  const home = path.join(tmp, 'h2');
  const src = path.join(tmp, 'in2');
  await makePhoto(path.join(src, 'good.jpg'), 24, 24, 3);
  await makePhoto(path.join(src, 'sub', 'good2.png'), 24, 24, 4);
  const bad = await makeBadInputs(src);
  const out = path.join(tmp, 'out2');
  const r = await run(['enhance', src, '-o', out, '--recursive'], { home });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /2 enhanced, 3 failed/);
  const failures = r.stderr.slice(r.stderr.indexOf('Failed (3):'));
  for (const f of Object.values(bad)) assert.ok(failures.includes(`${f}: `), `failure list lacks ${f}:\n${failures}`);
  assert.match(failures, /empty \(0 bytes\)\. Copy the photo again/);
  assert.ok(fs.existsSync(path.join(out, 'sub', 'good2_x4_tiny-x4.png')), 'folder structure kept');
  assertConsistent(home, out);
});

test('usage and setup errors: exit code 2 with a clear message', async () => {
  const home = path.join(tmp, 'h3');
  const noOut = await run(['enhance', 'x.jpg'], { home });
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /-o OUT/);
  const missing = await run(['enhance', path.join(tmp, 'nope.jpg'), '-o', path.join(tmp, 'o3')], { home });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.jpg: no such file or folder/);
  const badOpt = await run(['enhance', BIN, '-o', path.join(tmp, 'o3'), '--scale', '3'], { home });
  assert.equal(badOpt.code, 2);
  assert.match(badOpt.stderr, /options\.scale" must be one of 1, 2, 4/);
  const badRestore = await run(['enhance', BIN, '-o', path.join(tmp, 'o3'), '--restore', 'maybe'], { home });
  assert.equal(badRestore.code, 2);
  assert.match(badRestore.stderr, /--restore must be on, off or a number from 0 to 1, got "maybe"/);
  const unknown = await run(['frobnicate'], { home });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const blocker = path.join(tmp, 'blocker');
  fs.writeFileSync(blocker, '');
  const photo = await makePhoto(path.join(tmp, 'in3', 'a.png'), 16, 16, 5);
  const unwritable = await run(['enhance', photo, '-o', path.join(blocker, 'out')], { home });
  assert.equal(unwritable.code, 1);
  assert.match(unwritable.stderr, /blocker\/out: cannot write to the output folder \(a file is in the way\)\. Choose another output folder/);
});

test('catalog list / show / export and models list / info', async () => {
  const home = path.join(tmp, 'h4');
  const photo = await makePhoto(path.join(tmp, 'in4', 'cat.png'), 20, 20, 6);
  const e = await run(['enhance', photo, '-o', path.join(tmp, 'out4')], { home });
  assert.equal(e.code, 0, e.stderr);
  const list = await run(['catalog', 'list', '--json'], { home });
  const parsed = JSON.parse(list.stdout);
  assert.equal(parsed.total, 1);
  const id = parsed.results[0].id;
  const show = await run(['catalog', 'show', String(id)], { home });
  assert.match(show.stdout, /cat\.png/);
  assert.match(show.stdout, /20x20 png/);
  const csv = await run(['catalog', 'export', '--csv'], { home });
  assert.match(csv.stdout.split('\n')[0], /^id,imageId,imagePath,model,status,outputPath/);
  assert.match(csv.stdout.split('\n')[1], new RegExp(`^${id},\\d+,${photo.replace(/[/.]/g, '\\$&')},tiny-x4,done,`));
  const models = await run(['models', 'list'], { home });
  assert.match(models.stdout, /^\* tiny-x4 +general/m);
  const info = await run(['models', 'info', 'tiny-x4'], { home });
  const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tiny-x4.json'), 'utf8'));
  assert.match(info.stdout, new RegExp(`, ${manifest.params} params\\)`));
  const none = await run(['models', 'info', 'nope'], { home });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no model named "nope".*Installed models: tiny-x4/);
});

test('CRASH: a batch killed with SIGKILL mid-run, run again, finishes with no partial files and a consistent catalog', async () => {
  const home = path.join(tmp, 'h5');
  const src = path.join(tmp, 'in5');
  for (let i = 0; i < 4; i++) await makePhoto(path.join(src, i < 2 ? '' : 'deep', `p${i}.png`), 96, 72, 40 + i);
  const out = path.join(tmp, 'out5');
  const args = ['enhance', src, '-o', out, '--recursive', '--tile', '16'];
  let killedAfterFirst = false;
  const first = await run(args, {
    home,
    onStderr: (text, kill) => {
      if (!killedAfterFirst && /\[1\/4\] done/.test(text)) {
        killedAfterFirst = true;
        // Kill as soon as the second photo has a staging folder: a fixed delay raced photos that
        // finish in under 300 ms on a quiet machine.
        const timer = setInterval(() => {
          const busy = fs.existsSync(out) &&
            (fs.readdirSync(out, { recursive: true }) as string[]).some((f) => /\.duoscale-\d+\.tmp$/.test(f));
          if (busy) { clearInterval(timer); kill(); }
        }, 2);
      }
    },
  });
  assert.equal(first.signal, 'SIGKILL', `the batch finished before it could be killed:\n${first.stderr}`);
  // The kill really happened mid-photo: a staging folder and an unfinished record are left.
  const staged = (fs.readdirSync(out, { recursive: true }) as string[]).filter((f) => /\.duoscale-\d+\.tmp$/.test(f));
  assert.ok(staged.length >= 1, 'no staging folder: the kill did not hit a running photo');
  const db = new Database(path.join(home, 'catalog.sqlite'), { readonly: true });
  assert.ok((db.prepare("SELECT count(*) AS n FROM results WHERE status = 'running'").get() as { n: number }).n >= 1);
  db.close();

  const second = await run(args, { home });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /Recovered from an interrupted run: 0 output\(s\) finished, 1 partial output\(s\) removed, 1 job\(s\) can be resumed/);
  assert.match(second.stderr, /Resuming an interrupted batch \(1 of 4 already finished\)/);
  assert.match(second.stderr, /^\[2\/4\] done/m, "the resumed run starts at the second photo");
  assert.match(second.stderr, /4 enhanced/);
  const { done } = assertConsistent(home, out);
  assert.equal(done, 4);
  assert.ok(fs.existsSync(path.join(out, 'deep', 'p3_x4_tiny-x4.png')));
  for (const f of fs.readdirSync(out, { recursive: true }) as string[]) {
    const p = path.join(out, f);
    if (!fs.statSync(p).isFile()) continue;
    const m = await sharp(p).raw().toBuffer({ resolveWithObject: true }); // decodes fully: not truncated
    assert.deepEqual([m.info.width, m.info.height], [384, 288]);
  }
  const jobs = JSON.parse((await run(['jobs', '--json'], { home })).stdout);
  assert.equal(jobs.length, 1, 'the crashed job was resumed, not duplicated');
  assert.equal(jobs[0].state, 'done');
});
