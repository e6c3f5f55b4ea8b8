// The job queue: batches of photos run one job at a time (inference already uses every core),
// with events per tile, per item and per job, pause / resume / cancel, and crash recovery
// from the catalog.
//
// - cancel and pause both abort the running item through its AbortSignal (checked by the
//   engine between tiles). A paused item goes back to `pending` and is redone from its start
//   on resume; a cancelled one is `cancelled`, and so are the items after it.
// - every result goes through the catalog's commit protocol (see app/catalog/db.ts), so a
//   kill at any instant leaves either a finished output with its record or nothing.
// - jobs found `running` in the catalog whose process died are `paused` by
//   Catalog.reconcile(); resume() (or `duoscale enhance` run again with the same arguments)
//   finishes them, skipping what is already done.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type {
  BatchRequest, DuoscaleEvent, EnhanceOptions, JobItemSummary, JobState, JobSummary, OutputFormat, Provider, Settings,
} from '../api.ts';
import type { Catalog, JobItemRow, JobRow } from '../catalog/db.ts';
import { canonicalJson, hashText, removeStaging, sha256File } from '../catalog/db.ts';
import { DuoscaleError } from '../errors.ts';
import { planInputs } from './inputs.ts';

/** Every option filled in, as the engine receives it for one output. */
export interface ItemOptions {
  model: string;
  scale: 1 | 2 | 4;
  targetWidth?: number;
  format: OutputFormat;
  quality: number;
  naming: string;
  tile: number;
  seed: number;
  variations: number;
  /** 0..1, absent = 0 (see EnhanceOptions.restore). */
  restore?: number;
  keepMetadata: boolean;
  force: boolean;
  provider: Provider;
  threads: number;
}

export interface ResolvedModel {
  id: string;
  sha256: string;
  /** Whatever the engine needs to run it (app/models LoadedModel). */
  handle: unknown;
}

/** What the queue needs from the image engine; the service wires app/enhance.ts into it. */
export interface Engine {
  resolveModel(id: string | undefined): Promise<ResolvedModel>;
  enhance(req: {
    input: string; outputDir: string; model: unknown; options: ItemOptions; signal: AbortSignal;
    onTile: (done: number, total: number) => void;
  }): Promise<{ outputs: { path: string; seed: number; width: number; height: number }[]; input?: { width?: number; height?: number }; ms: number }>;
}

const TERMINAL: JobState[] = ['done', 'failed', 'cancelled'];
const JOB_EVENT_INTERVAL_MS = 250;

interface Current {
  itemId: number;
  input: string;
  pixels: number;
  startedAt: number;
  /** Fraction of this item's outputs finished (variations), plus the running one's tiles. */
  fraction: number;
}

interface Runtime {
  controller: AbortController | null;
  stop: 'pause' | 'cancel' | null;
  busyMs: number;
  donePixels: number;
  cur: Current | null;
  lastJobEmit: number;
  waiters: ((s: JobSummary) => void)[];
}

export function resolveItemOptions(o: EnhanceOptions | undefined, s: Settings, modelId: string): ItemOptions {
  o = o ?? {};
  const restore = o.restore ?? (s.repair ? 1 : 0);
  return {
    model: modelId,
    scale: o.scale ?? 4,
    ...(o.targetWidth !== undefined ? { targetWidth: o.targetWidth } : {}),
    format: o.format ?? s.format,
    quality: o.quality ?? s.quality,
    naming: o.naming ?? s.naming,
    tile: o.tile ?? s.tile,
    seed: o.seed ?? 0,
    variations: o.variations ?? 1,
    ...(restore ? { restore } : {}),
    keepMetadata: o.keepMetadata ?? s.keepMetadata,
    force: o.force ?? false,
    provider: s.provider,
    threads: s.threads,
  };
}

/** The parameters that decide the bytes of one output (provider, threads and force do not). */
export function outputParams(o: ItemOptions, seed: number): EnhanceOptions & { seed: number } {
  const p: EnhanceOptions & { seed: number } = {
    model: o.model, scale: o.scale, format: o.format, quality: o.quality, naming: o.naming, tile: o.tile,
    keepMetadata: o.keepMetadata, seed,
  };
  if (o.targetWidth !== undefined) p.targetWidth = o.targetWidth;
  if (o.variations > 1) p.variations = o.variations;
  // Only when on: results made before the option existed (or with it at 0) stay identical work.
  if (o.restore) p.restore = o.restore;
  return p;
}

/** With several variations the names must differ: add the seed unless the template has it. */
export function namingFor(o: ItemOptions): string {
  return o.variations > 1 && !o.naming.includes('{seed}') ? `${o.naming}_s{seed}` : o.naming;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Makes the folder and proves we can write there; a clear error otherwise. */
export function ensureWritableDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    const probe = path.join(dir, `.duoscale-probe-${process.pid}-${crypto.randomBytes(3).toString('hex')}.tmp`);
    fs.writeFileSync(probe, '');
    fs.unlinkSync(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EROFS' ? 'read-only file system'
      : code === 'ENOTDIR' || code === 'EEXIST' ? 'a file is in the way' : code === 'ENOSPC' ? 'the disk is full' : code;
    throw new DuoscaleError('E_OUTPUT_UNWRITABLE', `cannot write to the output folder (${why})`, {
      file: dir, hint: 'Choose another output folder, or fix its permissions', cause: err,
    });
  }
}

export class JobQueue {
  private readonly emitter = new EventEmitter();
  private readonly runtimes = new Map<string, Runtime>();
  private readonly order: string[] = [];
  private loop: Promise<void> | null = null;
  private closing = false;

  constructor(
    private readonly catalog: Catalog,
    private readonly engine: Engine,
    private readonly settings: () => Settings,
  ) {
    this.emitter.setMaxListeners(0);
  }

  on(listener: (e: DuoscaleEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  private emit(e: DuoscaleEvent): void {
    this.emitter.emit('event', e);
  }

  static requestHash(req: BatchRequest): string {
    return hashText(canonicalJson({ inputs: req.inputs, outputDir: req.outputDir, recursive: !!req.recursive, options: req.options ?? {} }));
  }

  /**
   * Plans and queues a batch. With `resumeSame`, an unfinished job with the very same request
   * (a crashed or paused run) is resumed instead of starting a new one.
   */
  async submit(req: BatchRequest, opts: { resumeSame?: boolean } = {}): Promise<JobSummary> {
    const outputDir = path.resolve(req.outputDir);
    const requestHash = JobQueue.requestHash(req);
    if (opts.resumeSame) {
      const old = this.catalog.findResumable(requestHash);
      if (old && (old.state === 'paused' || !this.runtimes.has(old.id)) && !this.isLiveElsewhere(old)) {
        return this.resume(old.id);
      }
    }
    const explicit = new Set(req.inputs.map((p) => path.resolve(p)));
    // Files found in folders that are our own earlier outputs (output folder = input folder) are not photos to enhance.
    const planned = planInputs(req.inputs, { recursive: !!req.recursive, outputDir })
      .filter((p) => explicit.has(p.input) || !this.catalog.isKnownOutput(p.input));
    if (planned.length === 0) {
      throw new DuoscaleError('E_NOT_FOUND', 'no photos found (looked for .jpg .png .webp .tif .avif .heic files)', {
        file: req.inputs.join(', '), hint: req.recursive ? 'Check the folder' : 'Add --recursive to look in subfolders',
      });
    }
    const pixels = await mapLimit(planned, 8, async (p) => {
      try {
        const m = await sharp(p.input, { limitInputPixels: false }).metadata();
        return m.width && m.height ? m.width * m.height : null;
      } catch {
        return null;
      }
    });
    const id = crypto.randomUUID();
    this.catalog.createJob({
      id, request: { ...req, outputDir }, requestHash, outputDir,
      items: planned.map((p, i) => ({ input: p.input, relativeDir: p.relativeDir, pixels: pixels[i] })),
    });
    this.runtimes.set(id, newRuntime());
    this.order.push(id);
    const s = this.summary(id);
    this.emit({ type: 'job', job: s });
    this.kick();
    return s;
  }

  private isLiveElsewhere(job: JobRow): boolean {
    return job.state === 'running' && !this.runtimes.has(job.id);
  }

  pause(id: string): JobSummary {
    const job = this.mustJob(id);
    if (TERMINAL.includes(job.state) || job.state === 'paused') return this.summary(id);
    const rt = this.runtimeOf(id);
    if (job.state === 'running' && rt.controller) {
      rt.stop = 'pause';
      rt.controller.abort(new DuoscaleError('E_CANCELLED', 'paused'));
    } else {
      this.catalog.setJobState(id, 'paused');
      this.removeFromOrder(id);
      this.emitJob(id, true);
    }
    return this.summary(id);
  }

  resume(id: string): JobSummary {
    const job = this.mustJob(id);
    if (job.state === 'running' && this.runtimes.get(id)?.controller) {
      // A pause was asked for but the item has not stopped yet: take it back.
      const rt = this.runtimeOf(id);
      if (rt.stop === 'pause') rt.stop = null;
      return this.summary(id);
    }
    if (job.state !== 'paused' && job.state !== 'queued' && job.state !== 'running') return this.summary(id);
    this.catalog.requeueItems(id);
    this.catalog.setJobState(id, 'queued');
    const rt = this.runtimeOf(id);
    rt.stop = null;
    if (!this.order.includes(id)) this.order.push(id);
    this.emitJob(id, true);
    this.kick();
    return this.summary(id);
  }

  cancel(id: string): JobSummary {
    const job = this.mustJob(id);
    if (TERMINAL.includes(job.state)) return this.summary(id);
    const rt = this.runtimeOf(id);
    if (job.state === 'running' && rt.controller) {
      rt.stop = 'cancel';
      rt.controller.abort(new DuoscaleError('E_CANCELLED', 'cancelled'));
    } else {
      this.catalog.cancelPendingItems(id);
      this.catalog.setJobState(id, 'cancelled');
      this.removeFromOrder(id);
      this.emitJob(id, true);
      this.settle(id);
    }
    return this.summary(id);
  }

  /** Resolves when the job ends or pauses. */
  wait(id: string): Promise<JobSummary> {
    const job = this.mustJob(id);
    if (TERMINAL.includes(job.state) || (job.state === 'paused' && !this.order.includes(id))) return Promise.resolve(this.summary(id));
    return new Promise((resolve) => this.runtimeOf(id).waiters.push(resolve));
  }

  /** Resolves once nothing is queued or running in this process. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** Aborts the running item (as a pause: it is redone on resume) and waits for the loop. */
  async shutdown(): Promise<void> {
    this.closing = true;
    for (const [id, rt] of this.runtimes) {
      if (rt.controller) {
        rt.stop = 'pause';
        rt.controller.abort(new DuoscaleError('E_CANCELLED', 'app closing'));
      }
      this.removeFromOrder(id);
    }
    await this.idle();
  }

  list(limit = 50): JobSummary[] {
    return this.catalog.listJobs(limit).map((j) => this.summary(j.id));
  }

  summary(id: string): JobSummary {
    const job = this.mustJob(id);
    const items = this.catalog.jobItems(id);
    const results = this.catalog.jobResults(id);
    const rt = this.runtimes.get(id);
    let done = 0, failed = 0, skipped = 0, finished = 0;
    const out: JobItemSummary[] = items.map((it) => {
      const own = results.get(it.id) ?? [];
      const reused = JSON.parse(it.reused_results) as { id: number; outputPath: string }[];
      if (it.state === 'done') done++;
      if (it.state === 'failed') failed++;
      if (it.state === 'skipped') skipped++;
      if (it.state !== 'pending' && it.state !== 'running') finished++;
      const s: JobItemSummary = {
        input: it.input_path,
        state: it.state,
        outputs: [...reused.map((r) => r.outputPath), ...own.filter((r) => r.outputPath).map((r) => r.outputPath as string)],
        resultIds: [...reused.map((r) => r.id), ...own.map((r) => r.id)],
      };
      if (it.error) s.error = it.error;
      return s;
    });
    const running = job.state === 'running' && rt?.cur ? rt.cur.fraction : 0;
    return {
      id, state: job.state, createdAt: job.created_at, total: items.length, done, failed, skipped,
      progress: items.length ? Math.min(1, (finished + running) / items.length) : 1,
      etaSeconds: job.state === 'running' && rt ? this.eta(items, rt) : null,
      items: out,
    };
  }

  private eta(items: JobItemRow[], rt: Runtime): number | null {
    const cur = rt.cur;
    const curElapsed = cur ? Date.now() - cur.startedAt : 0;
    const known = items.filter((i) => i.pixels);
    const avgPixels = known.length ? known.reduce((a, i) => a + (i.pixels as number), 0) / known.length : 1;
    const px = (i: JobItemRow) => i.pixels ?? avgPixels;
    const workedPixels = rt.donePixels + (cur ? cur.pixels * cur.fraction : 0);
    const workedMs = rt.busyMs + curElapsed;
    if (workedPixels <= 0 || workedMs <= 0) return null;
    const remaining = items.filter((i) => i.state === 'pending').reduce((a, i) => a + px(i), 0) + (cur ? cur.pixels * (1 - cur.fraction) : 0);
    return Math.round((remaining / (workedPixels / workedMs)) / 1000);
  }

  private mustJob(id: string): JobRow {
    const job = this.catalog.getJob(id);
    if (!job) throw new DuoscaleError('E_NOT_FOUND', `no job with id "${id}"`, { hint: 'List jobs with `duoscale jobs` or refresh the batch view' });
    return job;
  }

  private runtimeOf(id: string): Runtime {
    let rt = this.runtimes.get(id);
    if (!rt) {
      rt = newRuntime();
      this.runtimes.set(id, rt);
    }
    return rt;
  }

  private removeFromOrder(id: string): void {
    const i = this.order.indexOf(id);
    if (i >= 0) this.order.splice(i, 1);
  }

  private emitJob(id: string, force = false): void {
    const rt = this.runtimeOf(id);
    const t = Date.now();
    if (!force && t - rt.lastJobEmit < JOB_EVENT_INTERVAL_MS) return;
    rt.lastJobEmit = t;
    this.emit({ type: 'job', job: this.summary(id) });
  }

  private emitItem(jobId: string, itemId: number): void {
    const s = this.summary(jobId);
    const idx = this.catalog.jobItems(jobId).findIndex((i) => i.id === itemId);
    if (idx >= 0) this.emit({ type: 'item', jobId, item: s.items[idx] });
    this.emit({ type: 'job', job: s });
    this.runtimeOf(jobId).lastJobEmit = Date.now();
  }

  private settle(id: string): void {
    const job = this.catalog.getJob(id);
    if (!job) return;
    if (!TERMINAL.includes(job.state) && job.state !== 'paused') return;
    const rt = this.runtimeOf(id);
    const s = this.summary(id);
    for (const w of rt.waiters.splice(0)) w(s);
  }

  private kick(): void {
    if (this.loop) return;
    this.loop = (async () => {
      try {
        while (this.order.length) {
          const id = this.order.shift() as string;
          await this.runJob(id);
        }
      } finally {
        this.loop = null;
      }
    })();
    this.loop.catch(() => {});
  }

  private async runJob(id: string): Promise<void> {
    const job = this.catalog.getJob(id);
    if (!job || job.state !== 'queued') return;
    const rt = this.runtimeOf(id);
    rt.stop = null;
    this.catalog.setJobState(id, 'running');
    this.emitJob(id, true);
    const req = JSON.parse(job.request) as BatchRequest;
    let model: ResolvedModel;
    let options: ItemOptions;
    try {
      ensureWritableDir(job.output_dir);
      model = await this.engine.resolveModel(req.options?.model);
      options = resolveItemOptions(req.options, this.settings(), model.id);
    } catch (err) {
      this.failWholeJob(id, errorMessage(err));
      return;
    }
    for (const item of this.catalog.jobItems(id)) {
      if (rt.stop) break;
      if (item.state !== 'pending') continue;
      await this.runItem(job, item, model, options, rt);
    }
    const stop = rt.stop;
    rt.stop = null;
    rt.cur = null;
    if (stop === 'pause') {
      this.catalog.requeueItems(id);
      this.catalog.setJobState(id, 'paused', this.closing ? 'interrupted: the app closed while this job ran; resume it to finish' : null);
    } else if (stop === 'cancel') {
      this.catalog.cancelPendingItems(id);
      this.catalog.setJobState(id, 'cancelled');
    } else {
      const items = this.catalog.jobItems(id);
      const allFailed = items.length > 0 && items.every((i) => i.state === 'failed');
      this.catalog.setJobState(id, allFailed ? 'failed' : 'done', allFailed ? 'every photo failed; see each one for the reason' : null);
    }
    this.emitJob(id, true);
    this.emit({ type: 'catalog-changed' });
    this.settle(id);
  }

  private failWholeJob(id: string, message: string): void {
    for (const it of this.catalog.jobItems(id)) {
      if (it.state === 'pending' || it.state === 'running') this.catalog.setItemState(it.id, 'failed', message);
    }
    this.catalog.setJobState(id, 'failed', message);
    this.emitJob(id, true);
    this.settle(id);
  }

  private async runItem(job: JobRow, item: JobItemRow, model: ResolvedModel, options: ItemOptions, rt: Runtime): Promise<void> {
    const controller = new AbortController();
    rt.controller = controller;
    const t0 = Date.now();
    const cur: Current = { itemId: item.id, input: item.input_path, pixels: item.pixels ?? 0, startedAt: t0, fraction: 0 };
    rt.cur = cur;
    this.catalog.setItemState(item.id, 'running');
    this.emitItem(job.id, item.id);
    const seeds = Array.from({ length: options.variations }, (_, i) => (options.seed + i) >>> 0);
    const targetDir = path.join(job.output_dir, item.relative_dir);
    const reused: { id: number; outputPath: string }[] = [];
    let produced = 0;
    try {
      const input = item.input_path;
      let st: fs.Stats;
      try {
        st = fs.statSync(input);
      } catch {
        throw new DuoscaleError('E_NOT_FOUND', 'the file does not exist (moved or deleted since the batch started)', {
          file: input, hint: 'Put it back or remove it from the batch' });
      }
      if (!st.isFile()) throw new DuoscaleError('E_NOT_IMAGE', 'not a regular file', { file: input, hint: 'Pick a photo file' });
      const sha = sha256File(input);
      const meta = await readMeta(input);
      if (meta?.width && meta.height && !item.pixels) {
        cur.pixels = meta.width * meta.height;
        this.catalog.setItemPixels(item.id, cur.pixels);
      }
      const imageId = this.catalog.upsertImage({
        path: input, sha256: sha, bytes: st.size, width: meta?.width ?? null, height: meta?.height ?? null,
        format: meta?.format ?? path.extname(input).slice(1).toLowerCase(),
        metadata: {
          ...(meta?.icc ? { icc: meta.icc } : {}), exif: !!meta?.exif, xmp: !!meta?.xmp,
          ...(meta?.orientation ? { orientation: meta.orientation } : {}), ...(meta?.space ? { space: meta.space } : {}),
          hasAlpha: !!meta?.hasAlpha,
        },
        mtimeMs: Math.round(st.mtimeMs),
      });
      if (targetDir !== job.output_dir) ensureWritableDir(targetDir);
      for (let k = 0; k < seeds.length; k++) {
        if (controller.signal.aborted) throw controller.signal.reason;
        const seed = seeds[k];
        const params = outputParams(options, seed);
        const paramsHash = hashText(canonicalJson({ ...params, modelSha256: model.sha256 }));
        if (!options.force) {
          const hit = this.catalog.findIdentical(sha, model.id, paramsHash, targetDir);
          if (hit?.outputPath) {
            reused.push({ id: hit.id, outputPath: hit.outputPath });
            cur.fraction = (k + 1) / seeds.length;
            continue;
          }
        }
        const { id: resultId, stagingDir } = this.catalog.startResult({
          imageId, jobItemId: item.id, model: model.id, modelSha256: model.sha256, params, paramsHash, seed, targetDir,
        });
        try {
          fs.mkdirSync(stagingDir, { recursive: true });
          const res = await this.engine.enhance({
            input, outputDir: stagingDir, model: model.handle,
            options: { ...options, seed, variations: 1, naming: namingFor(options) },
            signal: controller.signal,
            onTile: (done, total) => {
              cur.fraction = (k + (total ? done / total : 0)) / seeds.length;
              this.emit({ type: 'tile', jobId: job.id, input, tile: done, tiles: total, etaSeconds: this.summaryEta(job.id) });
              this.emitJob(job.id);
            },
          });
          if (controller.signal.aborted) throw controller.signal.reason;
          const out = res.outputs[0];
          if (!out) throw new Error(`${input}: the engine wrote no output`);
          if (res.input?.width && res.input.height) this.catalog.updateImageSize(imageId, res.input.width, res.input.height);
          const finalPath = this.chooseFinalPath(targetDir, path.basename(out.path), input);
          const bytes = fs.statSync(out.path).size;
          this.catalog.markCommitting(resultId, {
            stagedPath: out.path, outputPath: finalPath, sha256: sha256File(out.path), bytes, width: out.width, height: out.height, ms: res.ms,
          });
          fs.renameSync(out.path, finalPath);
          this.catalog.markDone(resultId);
          produced++;
        } catch (err) {
          if (controller.signal.aborted || (err as DuoscaleError)?.code === 'E_CANCELLED') this.catalog.dropResult(resultId);
          else this.catalog.markFailed(resultId, errorMessage(err));
          throw err;
        } finally {
          removeStaging(stagingDir);
        }
        cur.fraction = (k + 1) / seeds.length;
      }
      if (reused.length) this.catalog.setItemReused(item.id, reused);
      this.catalog.setItemState(item.id, produced > 0 ? 'done' : 'skipped');
    } catch (err) {
      if (reused.length) this.catalog.setItemReused(item.id, reused);
      if (controller.signal.aborted) {
        this.catalog.setItemState(item.id, rt.stop === 'cancel' ? 'cancelled' : 'pending');
      } else {
        this.catalog.setItemState(item.id, 'failed', errorMessage(err));
      }
    } finally {
      rt.controller = null;
      if (this.catalog.jobItems(job.id).find((i) => i.id === item.id)?.state !== 'pending') {
        rt.busyMs += Date.now() - t0;
        rt.donePixels += cur.pixels;
      }
      rt.cur = null;
      this.emitItem(job.id, item.id);
      this.emit({ type: 'catalog-changed' });
    }
  }

  private summaryEta(jobId: string): number | null {
    const rt = this.runtimes.get(jobId);
    return rt ? this.eta(this.catalog.jobItems(jobId), rt) : null;
  }

  /**
   * Where an output goes. An earlier output of the same photo is replaced (a redo); any other
   * existing file - a photo, someone else's output - is never overwritten: a number is added.
   */
  private chooseFinalPath(dir: string, name: string, input: string): string {
    const ext = path.extname(name);
    const stem = name.slice(0, name.length - ext.length);
    for (let k = 1; ; k++) {
      const candidate = path.join(dir, k === 1 ? name : `${stem} (${k})${ext}`);
      if (candidate === input) continue;
      if (!fs.existsSync(candidate)) return candidate;
      if (this.catalog.outputImagePath(candidate) === input) return candidate;
    }
  }
}

function newRuntime(): Runtime {
  return { controller: null, stop: null, busyMs: 0, donePixels: 0, cur: null, lastJobEmit: 0, waiters: [] };
}

interface Meta {
  width?: number; height?: number; format?: string; icc?: string; exif: boolean; xmp: boolean;
  orientation?: number; space?: string; hasAlpha: boolean;
}

async function readMeta(file: string): Promise<Meta | null> {
  try {
    const m = await sharp(file, { limitInputPixels: false }).metadata();
    const swap = (m.orientation ?? 1) >= 5;
    return {
      width: swap ? m.height : m.width, height: swap ? m.width : m.height, format: m.format,
      ...(m.icc ? { icc: iccDescription(m.icc) } : {}),
      exif: !!m.exif, xmp: !!m.xmp, orientation: m.orientation, space: m.space, hasAlpha: !!m.hasAlpha,
    };
  } catch {
    return null;
  }
}

/** The profile's description tag ('desc'), or 'embedded' when it cannot be read. */
export function iccDescription(icc: Buffer): string {
  try {
    const count = icc.readUInt32BE(128);
    for (let i = 0; i < count; i++) {
      const off = 132 + i * 12;
      if (icc.toString('ascii', off, off + 4) !== 'desc') continue;
      const at = icc.readUInt32BE(off + 4);
      const type = icc.toString('ascii', at, at + 4);
      if (type === 'desc') {
        const len = icc.readUInt32BE(at + 8);
        return icc.toString('latin1', at + 12, at + 12 + len).replace(/\0+$/, '') || 'embedded';
      }
      if (type === 'mluc') {
        const recSize = icc.readUInt32BE(at + 12);
        const n = icc.readUInt32BE(at + 8);
        if (n > 0 && recSize >= 12) {
          const len = icc.readUInt32BE(at + 20);
          const strOff = icc.readUInt32BE(at + 24);
          const buf = icc.subarray(at + strOff, at + strOff + len);
          let s = '';
          for (let j = 0; j + 1 < buf.length; j += 2) s += String.fromCharCode(buf.readUInt16BE(j));
          return s.replace(/\0+$/, '') || 'embedded';
        }
      }
    }
  } catch { /* fall through */ }
  return 'embedded';
}

async function mapLimit<T, R>(xs: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(xs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, xs.length) }, async () => {
    while (next < xs.length) {
      const i = next++;
      out[i] = await fn(xs[i]);
    }
  }));
  return out;
}
