// Shared UI state: one small class with rune fields (SvelteKit's state.svelte.js pattern).
// API responses are replaced, never mutated, so they live in $state.raw.
import type {
  DuoscaleApi, DuoscaleEvent, JobSummary, ModelInfo, Settings, JobId, TrainingRun,
} from '../../../app/api.ts';
import { basename } from './format.ts';
import { setPathPrompt } from './transport.ts';

export type View = 'library' | 'compare' | 'batch' | 'models' | 'training' | 'settings';
const VIEWS: readonly View[] = ['library', 'compare', 'batch', 'models', 'training', 'settings'];

/** Events the Electron shell adds to the API's event stream (same shape as main/channels.ts). */
type ShellEvent =
  | { type: 'open-paths'; paths: string[]; source: 'drop' | 'menu' }
  | { type: 'navigate'; view: string };

export interface Toast {
  id: number;
  kind: 'error' | 'info' | 'success';
  title: string;
  detail?: string;
  key?: string;
}

export interface TileProgress { input: string; tile: number; tiles: number; etaSeconds: number | null }

export interface CompareTarget { imageId: number; resultId: number | null }

export interface PathRequest {
  folders: boolean;
  multiple: boolean;
  title: string;
  resolve: (paths: string[] | null) => void;
}

export interface ConfirmRequest {
  title: string;
  body: string;
  confirm: string;
  danger?: boolean;
  resolve: (ok: boolean) => void;
}

let toastSeq = 0;

export class AppState {
  api: DuoscaleApi;
  view = $state<View>('library');
  settings = $state.raw<Settings | null>(null);
  models = $state.raw<ModelInfo[]>([]);
  jobs = $state.raw<JobSummary[]>([]);
  tiles = $state.raw<Record<JobId, TileProgress>>({});
  trainingRuns = $state.raw<TrainingRun[]>([]);
  /** Last `progress` event per training run (later `sample`/`checkpoint` events must not hide it). */
  trainingProgress = $state.raw<Record<string, Record<string, unknown>>>({});
  /** Bumped on every catalog-changed event; views that show the catalog reload on it. */
  catalogVersion = $state(0);
  compare = $state.raw<CompareTarget | null>(null);
  /** Files and folders waiting in the Batch form (kept across view switches; filled by drops and the app menu too). */
  batchInputs = $state.raw<string[]>([]);
  toasts = $state.raw<Toast[]>([]);
  pathRequest = $state.raw<PathRequest | null>(null);
  confirmRequest = $state.raw<ConfirmRequest | null>(null);
  helpOpen = $state(false);
  ready = $state(false);
  fatal = $state<string | null>(null);
  /** Jobs started from "Enhance photo…": open their first result in Compare when done. */
  #openWhenDone = new Set<JobId>();
  #urlCache = new Map<string, Promise<string>>();
  #pickTitle = 'Choose files';

  activeJobs = $derived(this.jobs.filter((j) => j.state === 'running' || j.state === 'queued' || j.state === 'paused'));

  constructor(api: DuoscaleApi) {
    this.api = api;
  }

  async init(): Promise<void> {
    setPathPrompt((o) => this.askPaths({ ...o, title: this.#pickTitle }));
    this.api.onEvent((e) => this.#onEvent(e as DuoscaleEvent | ShellEvent));
    try {
      const [settings, models, jobs] = await Promise.all([
        this.api.settingsGet(), this.api.modelsList(), this.api.jobs(),
      ]);
      this.settings = settings;
      this.models = models;
      this.jobs = sortJobs(jobs);
      this.ready = true;
    } catch (err) {
      this.fatal = messageOf(err);
    }
    void this.refreshTraining();
  }

  /** Adds paths to the Batch form, without duplicates. */
  addBatchInputs(paths: string[]): void {
    const next = [...this.batchInputs];
    for (const p of paths) if (!next.includes(p)) next.push(p);
    this.batchInputs = next;
  }

  #onEvent(e: DuoscaleEvent | ShellEvent): void {
    switch (e.type) {
      case 'open-paths':
        // Electron: files dropped on the window or opened from the menu (main/channels.ts ShellEvent).
        this.addBatchInputs(e.paths);
        this.view = 'batch';
        break;
      case 'navigate':
        if (VIEWS.includes(e.view as View)) this.view = e.view as View;
        break;
      case 'job': {
        this.#putJob(e.job);
        if (e.job.state !== 'running') this.#dropTiles(e.job.id);
        if (this.#openWhenDone.has(e.job.id) && isFinished(e.job.state)) {
          this.#openWhenDone.delete(e.job.id);
          this.#afterSingleEnhance(e.job);
        }
        break;
      }
      case 'tile':
        this.tiles = { ...this.tiles, [e.jobId]: { input: e.input, tile: e.tile, tiles: e.tiles, etaSeconds: e.etaSeconds } };
        break;
      case 'item': {
        const job = this.jobs.find((j) => j.id === e.jobId);
        if (job) {
          const items = job.items.map((it) => (it.input === e.item.input ? e.item : it));
          this.#putJob({ ...job, items });
        }
        break;
      }
      case 'training': {
        const i = this.trainingRuns.findIndex((r) => r.id === e.run.id);
        this.trainingRuns = i < 0 ? [e.run, ...this.trainingRuns] : this.trainingRuns.map((r) => (r.id === e.run.id ? e.run : r));
        if (e.event.event === 'progress') this.trainingProgress = { ...this.trainingProgress, [e.run.id]: e.event };
        if (e.event.event === 'exported') void this.refreshModels();
        break;
      }
      case 'catalog-changed':
        this.catalogVersion++;
        break;
      case 'models-changed':
        void this.refreshModels();
        break;
      case 'settings-changed':
        this.settings = e.settings;
        break;
      default:
        break;
    }
  }

  #putJob(job: JobSummary): void {
    const i = this.jobs.findIndex((j) => j.id === job.id);
    const next = i < 0 ? [job, ...this.jobs] : this.jobs.map((j) => (j.id === job.id ? job : j));
    this.jobs = sortJobs(next);
  }

  #dropTiles(id: JobId): void {
    if (!(id in this.tiles)) return;
    const { [id]: _, ...rest } = this.tiles;
    this.tiles = rest;
  }

  #afterSingleEnhance(job: JobSummary): void {
    const item = job.items[0];
    if (job.state === 'done' && item && item.resultIds.length > 0) {
      void this.openResult(item.resultIds[0]);
      this.toast('success', `Enhanced ${basename(item.input)}`, item.outputs[0] ? `Saved as ${item.outputs[0]}` : undefined, `job:${job.id}`);
    } else if (item?.error) {
      this.toast('error', `Could not enhance ${basename(item.input)}`, item.error, `job:${job.id}`);
    } else if (item && item.state === 'skipped') {
      this.toast('info', `${basename(item.input)} was already enhanced with these settings`, 'Open it from the Library, or turn on "Redo identical work" in Batch to force a new run.', `job:${job.id}`);
    }
  }

  async refreshModels(): Promise<void> {
    try { this.models = await this.api.modelsList(); } catch (err) { this.fail('Could not list models', err); }
  }

  async refreshTraining(): Promise<void> {
    try {
      const runs = await this.api.trainingList();
      this.trainingRuns = [...runs].sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1));
    } catch (err) {
      this.fail('Could not list training runs', err);
    }
  }

  async refreshJobs(): Promise<void> {
    try { this.jobs = sortJobs(await this.api.jobs()); } catch (err) { this.fail('Could not list jobs', err); }
  }

  /** Record a job returned by a call (events may arrive before or after the call returns). */
  trackJob(job: JobSummary, openWhenDone = false): void {
    const known = this.jobs.find((j) => j.id === job.id);
    if (!known) this.#putJob(job);
    if (openWhenDone) {
      const latest = this.jobs.find((j) => j.id === job.id) ?? job;
      if (isFinished(latest.state)) this.#afterSingleEnhance(latest);
      else this.#openWhenDone.add(job.id);
    }
  }

  async openResult(resultId: number): Promise<void> {
    const imageId = await this.#imageIdOf(resultId);
    if (imageId == null) return;
    this.compare = { imageId, resultId };
    this.view = 'compare';
  }

  openImage(imageId: number, resultId: number | null): void {
    this.compare = { imageId, resultId };
    this.view = 'compare';
  }

  async #imageIdOf(resultId: number): Promise<number | null> {
    // The catalog list is ordered newest first; the result of a job that just finished is near the top.
    let offset = 0;
    for (;;) {
      const page = await this.api.catalogList({ limit: 200, offset });
      const hit = page.results.find((r) => r.id === resultId);
      if (hit) return hit.imageId;
      offset += page.results.length;
      if (page.results.length === 0 || offset >= page.total) return null;
    }
  }

  imageUrl(kind: 'original' | 'result' | 'thumb', id: number): Promise<string> {
    const key = `${kind}:${id}`;
    let p = this.#urlCache.get(key);
    if (!p) {
      p = this.api.imageUrl({ kind, id });
      p.catch(() => this.#urlCache.delete(key));
      this.#urlCache.set(key, p);
    }
    return p;
  }

  forgetUrls(resultId: number): void {
    this.#urlCache.delete(`result:${resultId}`);
    this.#urlCache.delete(`thumb:${resultId}`);
  }

  /** Shows a message; a toast with the same `key` replaces the earlier one (e.g. "Enhancing…" -> "Enhanced"). */
  toast(kind: Toast['kind'], title: string, detail?: string, key?: string): void {
    const t: Toast = { id: ++toastSeq, kind, title, detail, key };
    const rest = key ? this.toasts.filter((x) => x.key !== key) : this.toasts;
    this.toasts = [...rest.slice(-3), t];
    if (kind !== 'error') setTimeout(() => this.dismiss(t.id), kind === 'success' ? 4000 : 6000);
  }

  dismiss(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }

  fail(title: string, err: unknown): void {
    this.toast('error', title, messageOf(err));
  }

  /** Files or folders from the native dialog (Electron) or the path dialog (web mode, see init()). */
  async pick(opts: { folders: boolean; multiple: boolean; title: string }): Promise<string[] | null> {
    this.#pickTitle = opts.title;
    try {
      return await this.api.pickFiles({ folders: opts.folders, multiple: opts.multiple });
    } catch (err) {
      this.fail('Could not open the file dialog', err);
      return null;
    }
  }

  askPaths(opts: { folders: boolean; multiple: boolean; title: string }): Promise<string[] | null> {
    return new Promise((resolve) => {
      this.pathRequest = {
        ...opts,
        resolve: (paths) => { this.pathRequest = null; resolve(paths); },
      };
    });
  }

  confirm(req: Omit<ConfirmRequest, 'resolve'>): Promise<boolean> {
    return new Promise((resolve) => {
      this.confirmRequest = { ...req, resolve: (ok) => { this.confirmRequest = null; resolve(ok); } };
    });
  }

  modelName(id: string): string {
    return this.models.find((m) => m.id === id)?.name ?? id;
  }
}

export function isFinished(s: JobSummary['state']): boolean {
  return s === 'done' || s === 'failed' || s === 'cancelled';
}

function sortJobs(jobs: JobSummary[]): JobSummary[] {
  return [...jobs].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const hint = (err as { hint?: unknown }).hint;
    return typeof hint === 'string' && hint && !err.message.includes(hint) ? `${err.message} ${hint}` : err.message;
  }
  if (typeof err === 'string') return err;
  try { return JSON.stringify(err); } catch { return String(err); }
}
