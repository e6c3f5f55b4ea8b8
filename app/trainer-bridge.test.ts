// The trainer bridge with (1) a tiny Python program that speaks the trainer protocol (fast,
// named "protocol-speaking stand-in" below) and (2) the real duoscale_trainer parsing our
// command line (--dry-run; a real training run takes too long for this suite).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { DuoscaleEvent } from './api.ts';
import { Catalog } from './catalog/db.ts';
import { FINETUNE_INIT, FINETUNE_TEACHER, TrainerBridge, parseEventLine } from './trainer-bridge.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'duoscale-trainer-'));
const catalog = new Catalog(path.join(tmp, 'catalog.sqlite'));
after(() => {
  catalog.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
const data = path.join(tmp, 'photos');
fs.mkdirSync(data);

// A stand-in trainer: same protocol, same SIGTERM behaviour, no PyTorch.
const pkg = path.join(tmp, 'pylib', 'protocol_standin');
fs.mkdirSync(pkg, { recursive: true });
fs.writeFileSync(path.join(pkg, '__init__.py'), '');
fs.writeFileSync(path.join(pkg, '__main__.py'), `
import json, signal, sys, time
args = sys.argv[1:]
out = args[args.index('--out') + 1]
def emit(event, **kw):
    kw.update(event=event, time=time.time())
    sys.stdout.write(json.dumps(kw) + '\\n'); sys.stdout.flush()
stop = False
def on_term(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
print('log line on stderr', file=sys.stderr)
print('stray print that is not JSON', flush=True)
emit('started', command=args[0], run_dir=out, argv=args)
if '--fail' in args:
    emit('error', message='data folder has no photos')
    sys.exit(1)
for step in range(1, 10000):
    if stop:
        emit('checkpoint', path=out + '/last.pt', step=step)
        emit('finished', status='stopped', step=step)
        sys.exit(0)
    emit('progress', step=step, losses={'mse': 1.0 / step}, it_per_s=50.0, eta_s=None)
    if '--steps' in args and step >= int(args[args.index('--steps') + 1]):
        emit('exported', path=out + '/model.onnx')
        emit('finished', status='completed', step=step)
        sys.exit(0)
    time.sleep(0.02)
`);

function bridge(events: DuoscaleEvent[], opts: { module?: string; trainerDir?: string } = {}) {
  return new TrainerBridge(catalog, path.join(tmp, 'runs'), (e) => events.push(e), {
    module: opts.module ?? 'protocol_standin', trainerDir: opts.trainerDir ?? path.join(tmp, 'pylib'), killAfterSeconds: 10,
  });
}

test('parseEventLine takes protocol objects only', () => {
  assert.deepEqual(parseEventLine('{"event":"progress","step":1}'), { event: 'progress', step: 1 });
  assert.equal(parseEventLine('hello'), null);
  assert.equal(parseEventLine('{"step":1}'), null);
  assert.equal(parseEventLine('[1]'), null);
  assert.equal(parseEventLine('{broken'), null);
});

test('protocol-speaking stand-in: a run to completion becomes events and a done training run', async () => {
  const events: DuoscaleEvent[] = [];
  const b = bridge(events);
  const run = b.start({ command: 'student', dataDir: data, minutes: 1, preset: 'test', extraArgs: ['--steps', '3'] });
  assert.equal(run.state, 'running');
  const final = await b.wait(run.id);
  assert.equal(final?.state, 'done');
  const kinds = events.filter((e) => e.type === 'training').map((e) => (e as unknown as { event: { event: string } }).event.event);
  assert.deepEqual(kinds, ['spawned', 'started', 'progress', 'progress', 'progress', 'exported', 'finished', 'exit']);
  const started = events.find((e) => e.type === 'training' && e.event.event === 'started') as Extract<DuoscaleEvent, { type: 'training' }>;
  assert.deepEqual(started.event.argv, ['student', '--data', data, '--out', run.runDir, '--minutes', '1', '--preset', 'test', '--steps', '3']);
  assert.equal(catalog.trainingRunDetails(run.id)?.exportedModel, path.join(run.runDir, 'model.onnx'));
  const log = fs.readFileSync(path.join(run.runDir, 'trainer.log'), 'utf8');
  assert.match(log, /log line on stderr/);
  assert.match(log, /\[stdout, not protocol\] stray print/);
  assert.deepEqual(b.list().map((r) => r.id), [run.id]);
});

test('protocol-speaking stand-in: stop sends SIGTERM, the run checkpoints and is cancelled', async () => {
  const events: DuoscaleEvent[] = [];
  const b = bridge(events);
  const run = b.start({ command: 'teacher', dataDir: data, minutes: 5 });
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (events.some((e) => e.type === 'training' && e.event.event === 'progress' && (e.event.step as number) >= 3)) {
        clearInterval(t);
        resolve();
      }
    }, 10);
  });
  const stopped = await b.stop(run.id);
  assert.equal(stopped.state, 'cancelled');
  const kinds = events.map((e) => (e as unknown as { event: { event: string } }).event.event);
  assert.deepEqual(kinds.slice(-3), ['checkpoint', 'finished', 'exit'], 'stopped cleanly at a step boundary after a checkpoint');
  assert.equal(catalog.getTrainingRun(run.id)?.state, 'cancelled');
});

test('protocol-speaking stand-in: an error event and a non-zero exit make a failed run with the message', async () => {
  const b = bridge([]);
  const run = b.start({ command: 'teacher', dataDir: data, minutes: 1, extraArgs: ['--fail'] });
  const final = await b.wait(run.id);
  assert.equal(final?.state, 'failed');
  assert.equal(catalog.trainingRunDetails(run.id)?.error, 'data folder has no photos');
  assert.throws(() => b.start({ command: 'teacher', dataDir: path.join(tmp, 'missing'), minutes: 1 }), /training data folder does not exist/);
});

test('protocol-speaking stand-in: a fine-tune starts from the shipped checkpoint unless told otherwise', async () => {
  const models = path.join(tmp, 'shipped');
  fs.mkdirSync(models, { recursive: true });
  const init = path.join(models, FINETUNE_INIT);
  const teacher = path.join(models, FINETUNE_TEACHER);
  const events: DuoscaleEvent[] = [];
  const b = new TrainerBridge(catalog, path.join(tmp, 'runs'), (e) => events.push(e), {
    module: 'protocol_standin', trainerDir: path.join(tmp, 'pylib'), killAfterSeconds: 10, modelsDir: models,
  });
  const req = { command: 'finetune' as const, dataDir: data, minutes: 1, preset: 'cpu-quick', extraArgs: ['--steps', '2'] };
  assert.throws(() => b.start(req), (err: Error) => err.message.startsWith(`${init}: the checkpoint a fine-tune starts from is missing`));
  fs.writeFileSync(init, 'x');
  assert.throws(() => b.start(req), new RegExp(`${FINETUNE_TEACHER}: the checkpoint a fine-tune starts from is missing.*--teacher CKPT`));
  fs.writeFileSync(teacher, 'x');
  const run = b.start(req);
  assert.equal((await b.wait(run.id))?.state, 'done');
  const started = events.find((e) => e.type === 'training' && e.event.event === 'started') as Extract<DuoscaleEvent, { type: 'training' }>;
  assert.deepEqual(started.event.argv, ['student', '--data', data, '--out', run.runDir, '--minutes', '1', '--preset', 'cpu-quick',
    '--init', init, '--teacher', teacher, '--set', 'student.w_hr_adv=0', '--steps', '2']);
  // What the request names wins, and a named checkpoint is the trainer's to check.
  const own = b.argv({ ...req, extraArgs: ['--init', '/mine.pt', '--set', 'student.w_hr_adv=0.1'] }, '/run');
  assert.deepEqual(own.slice(own.indexOf('--preset')), ['--preset', 'cpu-quick', '--teacher', teacher, '--init', '/mine.pt', '--set', 'student.w_hr_adv=0.1']);
  assert.ok(!b.argv({ ...req, command: 'student' }, '/run').includes('--init'), 'only a fine-tune gets a start point');
  fs.rmSync(init);
  assert.doesNotThrow(() => b.argv({ ...req, extraArgs: ['--resume'] }, '/run'));
  assert.ok(!b.argv({ ...req, extraArgs: ['--resume'] }, '/run').includes('--init'), 'a resumed run takes its own checkpoint');
});

test('a missing Python is a failed run with a clear message', async () => {
  const b = new TrainerBridge(catalog, path.join(tmp, 'runs'), () => {}, { python: path.join(tmp, 'no-python'), trainerDir: tmp });
  const run = b.start({ command: 'teacher', dataDir: data, minutes: 1 });
  const final = await b.wait(run.id);
  assert.equal(final?.state, 'failed');
  assert.match(catalog.trainingRunDetails(run.id)?.error ?? '', /cannot start .*no-python.*Install Python 3/);
});

const trainerDir = path.resolve(import.meta.dirname, '..', 'trainer');
const havePython = spawnSync('python3', ['-c', 'import torch'], { cwd: trainerDir }).status === 0;

test('the real duoscale_trainer accepts the command line the bridge builds (--dry-run)', { skip: havePython ? false : 'python3 with torch not found' }, async () => {
  const events: DuoscaleEvent[] = [];
  const b = bridge(events, { module: 'duoscale_trainer', trainerDir });
  const run = b.start({ command: 'teacher', dataDir: data, minutes: 0.1, preset: 'test', extraArgs: ['--dry-run'] });
  const final = await b.wait(run.id);
  const log = fs.readFileSync(path.join(run.runDir, 'trainer.log'), 'utf8');
  assert.equal(final?.state, 'done', log);
  assert.match(log, /"preset": ?"test"/, 'the resolved config came back');
});

test('the real duoscale_trainer fine-tunes from the shipped checkpoint (a few real PyTorch steps)', { skip: havePython ? false : 'python3 with torch not found' }, async () => {
  const photos = path.join(tmp, 'finetune-photos');
  fs.mkdirSync(photos);
  fs.copyFileSync(path.resolve(import.meta.dirname, '..', 'resources', 'samples', 'coral.jpg'), path.join(photos, 'coral.jpg'));
  const events: DuoscaleEvent[] = [];
  // The default modelsDir: the repository's resources/models, where the shipped checkpoints live.
  const b = new TrainerBridge(catalog, path.join(tmp, 'runs'), (e) => events.push(e), { module: 'duoscale_trainer', trainerDir });
  const run = b.start({
    command: 'finetune', dataDir: photos, minutes: 0.05, preset: 'cpu-quick',
    extraArgs: ['--set', 'run.probe_seconds=1', '--set', 'data.batch_size=2', '--set', 'run.threads=1'],
  });
  const final = await b.wait(run.id);
  const log = fs.readFileSync(path.join(run.runDir, 'trainer.log'), 'utf8');
  assert.equal(final?.state, 'done', log);
  assert.match(log, /initialised the student from .*duoscale-general-x4\.ckpt\.pt/);
  const started = events.find((e) => e.type === 'training' && e.event.event === 'started') as Extract<DuoscaleEvent, { type: 'training' }>;
  const config = started.event.config as { student: Record<string, unknown>; model: Record<string, unknown> };
  assert.equal(config.student.w_hr_adv, 0, 'the HR adversarial term is off');
  assert.equal(config.student.restore_cond, true, 'the shipped model\'s repair input is kept');
  assert.deepEqual(started.event.init_gan, { downsampler: 'loaded', d_hr: 'loaded', d_lr: 'loaded' }, 'all four networks come from the checkpoint');
  const ckpt = events.find((e) => e.type === 'training' && e.event.event === 'checkpoint') as Extract<DuoscaleEvent, { type: 'training' }>;
  assert.ok(fs.statSync(String(ckpt.event.path)).size > 1e6, 'a checkpoint to export or continue from');
});
