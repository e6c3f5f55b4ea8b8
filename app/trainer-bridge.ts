// Runs the PyTorch trainer as a child process and turns its stdout protocol into events.
//
// Protocol (DESIGN.md, "Trainer process protocol"): `python -m duoscale_trainer <command> ...`
// prints one JSON object per line on stdout (`event`: started | progress | sample | checkpoint |
// exported | error | finished), logs on stderr. SIGTERM makes it stop at the next step boundary
// after writing a checkpoint. Every run is a row in the catalog's training_runs table; its
// stderr goes to <runDir>/trainer.log.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { DuoscaleEvent, TrainingRequest, TrainingRun } from './api.ts';
import type { Catalog } from './catalog/db.ts';
import { REPO_ROOT } from './paths.ts';

export interface TrainerBridgeOptions {
  /** Python interpreter; default $DUOSCALE_PYTHON or python3. */
  python?: string;
  /** Module run with -m; default duoscale_trainer. */
  module?: string;
  /** Folder holding the package (added to PYTHONPATH, used as cwd); default <repo>/trainer when present. */
  trainerDir?: string;
  /** Seconds to wait after SIGTERM before SIGKILL. */
  killAfterSeconds?: number;
  /** Folder holding the shipped training checkpoints a fine-tune starts from; default <repo>/resources/models. */
  modelsDir?: string;
}

/** The shipped checkpoints a `finetune` request starts from unless its extraArgs name others
 * (docs/MODELS.md, "Shipping"): the general model's training checkpoint (student, downsampler,
 * both discriminators and its recipe, restore input included) and the teacher it distils from. */
export const FINETUNE_INIT = 'duoscale-general-x4.ckpt.pt';
export const FINETUNE_TEACHER = 'duoscale-teacher-x4.ckpt.pt';

interface Live {
  child: ChildProcess;
  stopping: boolean;
  lastError: string | null;
  stderrTail: string[];
  exited: Promise<void>;
}

export class TrainerBridge {
  private readonly live = new Map<string, Live>();
  private readonly python: string;
  private readonly module: string;
  private readonly trainerDir: string | null;
  private readonly killAfter: number;
  private readonly modelsDir: string;

  constructor(
    private readonly catalog: Catalog,
    private readonly runsDir: string,
    private readonly emit: (e: DuoscaleEvent) => void,
    opts: TrainerBridgeOptions = {},
  ) {
    this.python = opts.python ?? process.env.DUOSCALE_PYTHON ?? 'python3';
    this.module = opts.module ?? 'duoscale_trainer';
    const dflt = path.join(REPO_ROOT, 'trainer');
    this.trainerDir = opts.trainerDir ?? (fs.existsSync(path.join(dflt, 'duoscale_trainer')) ? dflt : null);
    this.killAfter = opts.killAfterSeconds ?? 120;
    this.modelsDir = opts.modelsDir ?? path.join(REPO_ROOT, 'resources', 'models');
  }

  /** The command line a request becomes (also what a user can type in a terminal). */
  argv(req: TrainingRequest, runDir: string): string[] {
    // The trainer has no `finetune` command: fine-tuning is `student` started from a checkpoint.
    const command = req.command === 'finetune' ? 'student' : req.command;
    return [
      '-m', this.module, command,
      '--data', req.dataDir,
      '--out', runDir,
      '--minutes', String(req.minutes),
      ...(req.preset ? ['--preset', req.preset] : []),
      ...(req.command === 'finetune' ? this.finetuneStart(req.extraArgs ?? []) : []),
      ...(req.extraArgs ?? []),
    ];
  }

  /** What a fine-tune adds where its extraArgs are silent: the shipped checkpoint as --init (the
   * trainer keeps that model's recipe from it), its teacher, and the HR adversarial term off. On a
   * few dozen photos the inherited HR discriminator's pull is all that term gives, and within a
   * few hundred steps it drew a 4-px hatching over faces (docs/MODELS.md, "The face model"). */
  finetuneStart(extra: readonly string[]): string[] {
    const out: string[] = [];
    if (!extra.includes('--init') && !extra.includes('--resume')) out.push('--init', path.join(this.modelsDir, FINETUNE_INIT));
    if (!extra.includes('--teacher')) out.push('--teacher', path.join(this.modelsDir, FINETUNE_TEACHER));
    if (!extra.some((a) => a.startsWith('student.w_hr_adv='))) out.push('--set', 'student.w_hr_adv=0');
    return out;
  }

  start(req: TrainingRequest): TrainingRun {
    if (!fs.existsSync(req.dataDir) || !fs.statSync(req.dataDir).isDirectory()) {
      throw new Error(`${req.dataDir}: the training data folder does not exist. Pick a folder of photos.`);
    }
    if (req.command === 'finetune') {
      const start = this.finetuneStart(req.extraArgs ?? []);
      for (const flag of ['--init', '--teacher']) {
        const i = start.indexOf(flag);
        if (i >= 0 && !fs.existsSync(start[i + 1]!)) {
          throw new Error(`${start[i + 1]}: the checkpoint a fine-tune starts from is missing. Reinstall Duoscale, or give ${flag} CKPT in the run's extra arguments.`);
        }
      }
    }
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
    const id = `${req.name ?? req.command}-${stamp}-${crypto.randomBytes(2).toString('hex')}`;
    const runDir = path.join(this.runsDir, id);
    fs.mkdirSync(runDir, { recursive: true });
    const log = fs.createWriteStream(path.join(runDir, 'trainer.log'), { flags: 'a' });
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1' };
    if (this.trainerDir) env.PYTHONPATH = [this.trainerDir, env.PYTHONPATH].filter(Boolean).join(path.delimiter);
    const argv = this.argv(req, runDir);
    const child = spawn(this.python, argv, {
      cwd: this.trainerDir ?? runDir, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.catalog.insertTrainingRun({ id, command: req.command, runDir, request: req, pid: child.pid ?? null });
    let resolveExit!: () => void;
    const live: Live = { child, stopping: false, lastError: null, stderrTail: [], exited: new Promise((r) => { resolveExit = r; }) };
    this.live.set(id, live);

    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      const event = parseEventLine(line);
      if (!event) {
        log.write(`[stdout, not protocol] ${line}\n`);
        return;
      }
      this.onEvent(id, live, event);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      live.stderrTail.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      if (live.stderrTail.length > 20) live.stderrTail.splice(0, live.stderrTail.length - 20);
    });
    child.on('error', (err) => {
      live.lastError = `cannot start ${this.python}: ${err.message}. Install Python 3 and the trainer (pip install -e trainer), or set DUOSCALE_PYTHON`;
    });
    child.on('close', (code, signal) => {
      rl.close();
      log.end();
      const state: TrainingRun['state'] = live.stopping ? 'cancelled' : code === 0 && !live.lastError ? 'done' : 'failed';
      const error = state === 'failed'
        ? live.lastError ?? `the trainer exited with ${signal ? `signal ${signal}` : `code ${code}`}: ${live.stderrTail.slice(-3).join(' | ') || 'no message'}`
        : undefined;
      const event = { event: 'exit', code, signal, state, ...(error ? { message: error } : {}) };
      this.catalog.updateTrainingRun(id, { state, lastEvent: event, ...(error ? { error } : {}) });
      this.live.delete(id);
      this.emit({ type: 'training', run: this.catalog.getTrainingRun(id)!, event });
      resolveExit();
    });
    const run = this.catalog.getTrainingRun(id)!;
    this.emit({ type: 'training', run, event: { event: 'spawned', pid: child.pid ?? null, argv } });
    return run;
  }

  private onEvent(id: string, live: Live, event: Record<string, unknown>): void {
    const patch: Parameters<Catalog['updateTrainingRun']>[1] = { lastEvent: event };
    if (event.event === 'error') live.lastError = typeof event.message === 'string' ? event.message : JSON.stringify(event);
    if (event.event === 'error') patch.error = live.lastError ?? undefined;
    if (event.event === 'exported') {
      const p = event.path ?? event.model ?? event.onnx;
      if (typeof p === 'string') patch.exportedModel = p;
    }
    this.catalog.updateTrainingRun(id, patch);
    this.emit({ type: 'training', run: this.catalog.getTrainingRun(id)!, event });
  }

  /** SIGTERM (the trainer checkpoints and exits); SIGKILL if it has not exited after killAfterSeconds. Resolves after exit. */
  async stop(id: string, waitSeconds = 30): Promise<TrainingRun> {
    const live = this.live.get(id);
    const run = this.catalog.getTrainingRun(id);
    if (!run) throw new Error(`no training run "${id}"; list runs with trainingList`);
    if (!live) return run;
    live.stopping = true;
    live.child.kill('SIGTERM');
    const killer = setTimeout(() => live.child.kill('SIGKILL'), this.killAfter * 1000);
    killer.unref();
    await Promise.race([live.exited, new Promise((r) => setTimeout(r, waitSeconds * 1000).unref())]);
    if (!this.live.has(id)) clearTimeout(killer);
    return this.catalog.getTrainingRun(id)!;
  }

  list(): TrainingRun[] {
    return this.catalog.listTrainingRuns();
  }

  /** Resolves when the run's process has exited (immediately when it is not ours or not running). */
  async wait(id: string): Promise<TrainingRun | null> {
    const live = this.live.get(id);
    if (live) await live.exited;
    return this.catalog.getTrainingRun(id);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.stop(id)));
  }
}

/** One protocol line -> event object, or null when the line is not a JSON object with an `event`. */
export function parseEventLine(line: string): Record<string, unknown> | null {
  const t = line.trim();
  if (!t.startsWith('{')) return null;
  try {
    const v = JSON.parse(t);
    return v && typeof v === 'object' && !Array.isArray(v) && typeof v.event === 'string' ? v : null;
  } catch {
    return null;
  }
}
