// DuoscaleService: the core behind the renderer API (app/api.ts), transport-free.
// Electron's main process and the web mode (`duoscale serve`, app/server/) both wrap one
// instance; the CLI uses it directly. Every argument is validated here as well (the
// transports validate too), so no caller can reach the catalog or the disk with bad input.
//
//   const service = await DuoscaleService.open({ home: '/tmp/x' });
//   const off = service.onEvent((e) => console.log(e.type));
//   const job = await service.batch({ inputs: ['/photos'], outputDir: '/out', recursive: true });
//   await service.waitJob(job.id);
//   await service.close();
//
// Image ids for imageUrl / imagePath: 'original' -> images.id, 'result' -> results.id,
// 'thumb' -> results.id (thumbnail of the result's output; of its original when the result failed).
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type {
  BatchRequest, CatalogQuery, DuoscaleApi, DuoscaleEvent, EnhanceOptions, ImageRecord, JobId, JobSummary, ModelId,
  ModelInfo, ResultRecord, Settings, TrainingRequest, TrainingRun,
} from './api.ts';
import { validateApiArgs } from './api-validate.ts';
import { Catalog, type ReconcileReport } from './catalog/db.ts';
import { enhanceFile, type ResolvedOptions } from './enhance.ts';
import { DuoscaleError } from './errors.ts';
import { JobQueue, type Engine, type ItemOptions, type ResolvedModel } from './jobs/queue.ts';
import { ModelRegistry, type LoadedModel } from './models/registry.ts';
import { resolvePaths, type DuoscalePaths } from './paths.ts';
import { SettingsStore } from './settings.ts';
import { ThumbCache } from './thumbs.ts';
import { TrainerBridge, type TrainerBridgeOptions } from './trainer-bridge.ts';

type ImageKind = 'original' | 'result' | 'thumb';

export interface ServiceOptions {
  /** User data folder (default DUOSCALE_HOME or the OS app-data folder). */
  home?: string;
  /** Shipped models folder (default DUOSCALE_MODELS_DIR or <repo>/resources/models). */
  builtinModels?: string;
  /** URL for <img src>; default `duoscale-img://<kind>/<id>` (Electron's protocol). */
  imageUrl?: (kind: ImageKind, id: number) => string;
  /** Shows a file in the OS file manager; default xdg-open / open -R / explorer /select. */
  reveal?: (file: string) => Promise<void>;
  /** Native dialogs (Electron); default answers null (web mode asks for a path itself). */
  pickFiles?: (input: { folders: boolean; multiple: boolean }) => Promise<string[] | null>;
  trainer?: TrainerBridgeOptions;
  /** Finish jobs a crashed process left (resume them) instead of leaving them paused. Default false. */
  autoResume?: boolean;
}

export class DuoscaleService implements DuoscaleApi {
  readonly paths: DuoscalePaths;
  readonly catalog: Catalog;
  readonly settings: SettingsStore;
  readonly registry: ModelRegistry;
  readonly queue: JobQueue;
  readonly trainer: TrainerBridge;
  readonly thumbs: ThumbCache;
  /** What start-up recovery did (for logs and tests). */
  readonly recovered: ReconcileReport;
  private readonly events = new EventEmitter();
  private closed = false;

  private constructor(private readonly opts: ServiceOptions) {
    this.paths = resolvePaths({ home: opts.home, builtinModels: opts.builtinModels });
    fs.mkdirSync(this.paths.home, { recursive: true });
    this.events.setMaxListeners(0);
    this.catalog = new Catalog(this.paths.catalog);
    this.recovered = this.catalog.reconcile();
    this.settings = new SettingsStore(this.paths.settings);
    this.registry = new ModelRegistry(this.paths.builtinModels, this.paths.userModels);
    this.thumbs = new ThumbCache(this.paths.thumbs);
    this.thumbs.sweep();
    this.queue = new JobQueue(this.catalog, this.engine(), () => this.settings.get());
    this.queue.on((e) => this.publish(e));
    this.trainer = new TrainerBridge(this.catalog, this.paths.trainingRuns, (e) => this.publish(e), { modelsDir: this.paths.builtinModels, ...opts.trainer });
  }

  static async open(opts: ServiceOptions = {}): Promise<DuoscaleService> {
    const s = new DuoscaleService(opts);
    if (opts.autoResume) {
      for (const j of s.catalog.listJobs(1000)) {
        if (j.state === 'paused' && j.error?.startsWith('interrupted')) s.queue.resume(j.id);
      }
    }
    return s;
  }

  private publish(e: DuoscaleEvent): void {
    this.events.emit('event', e);
  }

  /** The engine the queue drives: model choice from settings/registry, enhanceFile from app/enhance.ts. */
  private engine(): Engine {
    return {
      resolveModel: async (id: string | undefined): Promise<ResolvedModel> => {
        const modelId = id ?? (await this.defaultModelId());
        const loaded = await this.registry.load(modelId);
        return { id: loaded.id, sha256: loaded.sha256, handle: loaded };
      },
      enhance: async (req) => {
        return enhanceFile({
          input: req.input, outputDir: req.outputDir, model: req.model as LoadedModel,
          options: toResolvedOptions(req.options), signal: req.signal, onTile: req.onTile,
        });
      },
    };
  }

  /** settings.defaultModel when installed, else the first shipped `general` model, else the first model. */
  async defaultModelId(): Promise<ModelId> {
    const models = await this.registry.list();
    const wanted = this.settings.get().defaultModel;
    if (wanted && models.some((m) => m.id === wanted)) return wanted;
    const pick = models.find((m) => m.builtin && m.task === 'general') ?? models.find((m) => m.task === 'general') ?? models[0];
    if (!pick) {
      const refused = this.registry.refused();
      throw new DuoscaleError('E_MODEL_NOT_FOUND', `no model is installed (looked in ${this.paths.builtinModels} and ${this.paths.userModels})`, {
        hint: refused.length ? `These were refused: ${refused.map((r) => r.reason).join('; ')}`
          : 'Import one with `duoscale models import MODEL.onnx` or reinstall Duoscale',
      });
    }
    return pick.id;
  }

  // ------------------------------------------------------------------ jobs

  async enhance(input: { path: string; outputDir?: string; options?: EnhanceOptions }): Promise<JobSummary> {
    const a = validateApiArgs('enhance', input);
    const outputDir = a.outputDir ?? this.settings.get().outputDir;
    return this.queue.submit({ inputs: [a.path], outputDir, options: a.options });
  }

  async batch(req: BatchRequest, opts: { resumeSame?: boolean } = {}): Promise<JobSummary> {
    return this.queue.submit(validateApiArgs('batch', req), opts);
  }

  async jobs(): Promise<JobSummary[]> {
    return this.queue.list();
  }

  async pause(input: { jobId: JobId }): Promise<JobSummary> {
    return this.queue.pause(validateApiArgs('pause', input).jobId);
  }

  async resume(input: { jobId: JobId }): Promise<JobSummary> {
    return this.queue.resume(validateApiArgs('resume', input).jobId);
  }

  async cancel(input: { jobId: JobId }): Promise<JobSummary> {
    return this.queue.cancel(validateApiArgs('cancel', input).jobId);
  }

  /** Not part of the renderer API: resolves when the job ends or pauses (CLI, tests). */
  waitJob(id: JobId): Promise<JobSummary> {
    return this.queue.wait(id);
  }

  // ------------------------------------------------------------------ catalog

  async catalogList(query: CatalogQuery): Promise<{ results: ResultRecord[]; total: number }> {
    return this.catalog.listResults(validateApiArgs('catalogList', query));
  }

  async catalogImage(input: { imageId: number }): Promise<{ image: ImageRecord; results: ResultRecord[] }> {
    const { imageId } = validateApiArgs('catalogImage', input);
    const image = this.catalog.getImage(imageId);
    if (!image) throw new DuoscaleError('E_NOT_FOUND', `no image with id ${imageId} in the catalog`, { hint: 'Refresh the library' });
    return { image, results: this.catalog.resultsForImage(imageId) };
  }

  async deleteResult(input: { resultId: number }): Promise<void> {
    const { resultId } = validateApiArgs('deleteResult', input);
    const result = this.catalog.getResult(resultId);
    if (!result) throw new DuoscaleError('E_NOT_FOUND', `no result with id ${resultId} in the catalog`, { hint: 'Refresh the library' });
    const output = this.catalog.deleteResult(resultId);
    // Never an original: only a path the catalog recorded as this result's output, and only if no image record names it.
    if (output && output !== result.imagePath && !this.catalog.isKnownInput(output) && !this.catalog.isKnownOutput(output)) {
      fs.rmSync(output, { force: true });
    }
    this.publish({ type: 'catalog-changed' });
  }

  async imageUrl(input: { kind: ImageKind; id: number }): Promise<string> {
    const a = validateApiArgs('imageUrl', input);
    if (!(await this.imagePath(a))) {
      throw new DuoscaleError('E_NOT_FOUND', `no ${a.kind} image with id ${a.id} (unknown to the catalog, or its file is gone)`, { hint: 'Refresh the library' });
    }
    return (this.opts.imageUrl ?? ((k, i) => `duoscale-img://${k}/${i}`))(a.kind, a.id);
  }

  /**
   * Not part of the renderer API: the file behind an image reference, for the transports'
   * image routes. Null when the catalog does not know the id or the file is gone.
   */
  async imagePath(input: { kind: ImageKind; id: number }): Promise<string | null> {
    const { kind, id } = input;
    if (kind === 'original') {
      const img = this.catalog.getImage(id);
      return img && fs.existsSync(img.path) ? img.path : null;
    }
    if (kind === 'result') {
      const out = this.catalog.resultOutput(id);
      return out && fs.existsSync(out.path) ? out.path : null;
    }
    const out = this.catalog.resultOutput(id);
    try {
      if (out && fs.existsSync(out.path)) return await this.thumbs.get(out.path, out.sha256);
      const r = this.catalog.getResult(id);
      const img = r ? this.catalog.getImage(r.imageId) : null;
      if (img && fs.existsSync(img.path) && img.width > 0) return await this.thumbs.get(img.path, img.sha256);
    } catch {
      return null;
    }
    return null;
  }

  async revealInFolder(input: { path: string }): Promise<void> {
    const { path: p } = validateApiArgs('revealInFolder', input);
    if (!this.catalog.isKnownInput(p) && !this.catalog.isKnownOutput(p)) {
      throw new DuoscaleError('E_NOT_FOUND', 'the catalog knows no photo or result at this path', { file: p, hint: 'Only photos in the library can be revealed' });
    }
    if (!fs.existsSync(p)) throw new DuoscaleError('E_NOT_FOUND', 'the file is gone', { file: p, hint: 'It was moved or deleted outside Duoscale' });
    await (this.opts.reveal ?? revealDefault)(p);
  }

  // ------------------------------------------------------------------ models

  async modelsList(): Promise<ModelInfo[]> {
    validateApiArgs('modelsList', undefined);
    let defaultId: string | undefined;
    try {
      defaultId = await this.defaultModelId();
    } catch {
      defaultId = undefined;
    }
    const list = await this.registry.list(defaultId);
    for (const m of list) {
      this.catalog.upsertModel({ id: m.id, name: m.name, task: m.task, scale: m.scale, sha256: '', path: m.path, builtin: m.builtin, manifest: { metrics: m.metrics } });
    }
    return list;
  }

  async modelImport(input: { onnxPath: string }): Promise<ModelInfo> {
    const { onnxPath } = validateApiArgs('modelImport', input);
    const info = await this.registry.import(onnxPath);
    this.publish({ type: 'models-changed' });
    return (await this.modelsList()).find((m) => m.id === info.id) ?? info;
  }

  async modelRemove(input: { id: ModelId }): Promise<void> {
    const { id } = validateApiArgs('modelRemove', input);
    await this.registry.remove(id);
    this.catalog.removeModel(id);
    if (this.settings.get().defaultModel === id) {
      const s = this.settings.set({ defaultModel: '' });
      this.publish({ type: 'settings-changed', settings: s });
    }
    this.publish({ type: 'models-changed' });
  }

  async modelSetDefault(input: { id: ModelId }): Promise<Settings> {
    const { id } = validateApiArgs('modelSetDefault', input);
    await this.registry.get(id); // throws a clear E_MODEL_NOT_FOUND
    const s = this.settings.set({ defaultModel: id });
    this.publish({ type: 'settings-changed', settings: s });
    this.publish({ type: 'models-changed' });
    return s;
  }

  // ------------------------------------------------------------------ settings

  async settingsGet(): Promise<Settings> {
    validateApiArgs('settingsGet', undefined);
    return this.settings.get();
  }

  async settingsSet(patch: Partial<Settings>): Promise<Settings> {
    const clean = validateApiArgs('settingsSet', patch);
    if (clean.defaultModel) await this.registry.get(clean.defaultModel);
    const s = this.settings.set(clean);
    this.publish({ type: 'settings-changed', settings: s });
    return s;
  }

  // ------------------------------------------------------------------ training

  async trainingStart(req: TrainingRequest): Promise<TrainingRun> {
    return this.trainer.start(validateApiArgs('trainingStart', req));
  }

  async trainingStop(input: { id: string }): Promise<TrainingRun> {
    return this.trainer.stop(validateApiArgs('trainingStop', input).id);
  }

  async trainingList(): Promise<TrainingRun[]> {
    validateApiArgs('trainingList', undefined);
    return this.trainer.list();
  }

  // ------------------------------------------------------------------ misc

  async pickFiles(input: { folders: boolean; multiple: boolean }): Promise<string[] | null> {
    const a = validateApiArgs('pickFiles', input);
    return this.opts.pickFiles ? this.opts.pickFiles(a) : null;
  }

  onEvent(listener: (e: DuoscaleEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  /** Stops work (the running photo is redone on next start), stops training runs, closes the catalog. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.shutdown();
    await this.trainer.stopAll();
    this.catalog.close();
    this.events.removeAllListeners();
  }
}

/** ItemOptions (queue) -> the ResolvedOptions app/enhance.ts takes (every EnhanceOptions field + provider + threads). */
function toResolvedOptions(o: ItemOptions): ResolvedOptions {
  return { ...o };
}

async function revealDefault(file: string): Promise<void> {
  const [cmd, args] = process.platform === 'darwin' ? ['open', ['-R', file]]
    : process.platform === 'win32' ? ['explorer.exe', [`/select,${file}`]]
      : ['xdg-open', [path.dirname(file)]];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cmd as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', (err) => reject(new Error(`${file}: cannot open the file manager (${err.message})`)));
    child.on('spawn', () => { child.unref(); resolve(); });
  });
}
