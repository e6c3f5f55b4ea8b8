// The one typed API between the renderer and the core (DESIGN.md, "Renderer API").
//
// The preload implements it over Electron IPC; the web mode (`duoscale serve`) implements
// it over HTTP (POST /api/<method>, JSON body = the argument) plus a server-sent event
// stream (GET /api/events) carrying `DuoscaleEvent`s. Every argument that crosses it is
// validated by `app/api-validate.ts` on the core side before any work is done.
//
// Rules: everything here is plain JSON (no Buffers, no Dates: times are ISO strings or
// epoch milliseconds); paths are absolute strings on the machine running the core.

export type JobId = string;
export type ModelId = string;

export type OutputFormat = 'same' | 'jpeg' | 'png' | 'webp' | 'tiff' | 'avif';
export type Provider = 'auto' | 'cpu' | 'cuda' | 'dml' | 'coreml';

/** How one photo is enhanced. Every field is optional; missing fields come from Settings. */
export interface EnhanceOptions {
  model?: ModelId;
  /** Output scale relative to the (oriented) input: 1, 2 or 4. Ignored when targetWidth is set. */
  scale?: 1 | 2 | 4;
  /** Output width in pixels; height follows the aspect ratio. */
  targetWidth?: number;
  format?: OutputFormat;
  /** 1-100 for lossy formats. */
  quality?: number;
  /** Naming template, e.g. "{name}_x{scale}_{model}" (tokens: name, ext, scale, model, seed, date). */
  naming?: string;
  /** Tile edge in LR pixels; 0 or missing = chosen from available memory. */
  tile?: number;
  seed?: number;
  /** Produce N outputs from seeds seed, seed+1, ... for the user to pick from. */
  variations?: number;
  /**
   * Repair damage (noise, JPEG artefacts, blur) as well as upscaling: 0 = the photo is clean, keep
   * fidelity (default); 1 = repair. Only models whose manifest has a "restore" input use it; the
   * others ignore it.
   */
  restore?: number;
  /** Keep ICC profile, EXIF and XMP of the original (default true). */
  keepMetadata?: boolean;
  /** Redo work the catalog says was already done with identical parameters. */
  force?: boolean;
}

export interface BatchRequest {
  /** Files and folders. Folders are walked (recursively when `recursive`). */
  inputs: string[];
  outputDir: string;
  recursive?: boolean;
  options?: EnhanceOptions;
}

export type JobState = 'queued' | 'running' | 'paused' | 'done' | 'failed' | 'cancelled';

export interface JobItemSummary {
  input: string;
  state: 'pending' | 'running' | 'done' | 'skipped' | 'failed' | 'cancelled';
  outputs: string[];
  error?: string;
  resultIds: number[];
}

export interface JobSummary {
  id: JobId;
  state: JobState;
  createdAt: string;
  total: number;
  done: number;
  failed: number;
  skipped: number;
  /** 0..1 over all items, tile-weighted for the running item. */
  progress: number;
  etaSeconds: number | null;
  items: JobItemSummary[];
}

export interface ImageRecord {
  id: number;
  path: string;
  sha256: string;
  width: number;
  height: number;
  format: string;
  bytes: number;
  metadata: { icc?: string; exif: boolean; xmp: boolean; orientation?: number; space?: string; hasAlpha: boolean };
  addedAt: string;
}

export interface ResultRecord {
  id: number;
  imageId: number;
  imagePath: string;
  model: ModelId;
  params: EnhanceOptions & { seed: number };
  outputPath: string | null;
  status: 'done' | 'failed' | 'running';
  error: string | null;
  width: number | null;
  height: number | null;
  ms: number | null;
  createdAt: string;
}

export interface CatalogQuery {
  search?: string;
  model?: ModelId;
  status?: ResultRecord['status'];
  /** ISO dates, inclusive. */
  from?: string;
  to?: string;
  limit?: number;
  offset?: number;
}

export interface ModelInfo {
  id: ModelId;
  name: string;
  task: string;
  scale: number;
  steps: number;
  params: number;
  builtin: boolean;
  isDefault: boolean;
  path: string;
  card: string;
  metrics: Record<string, unknown>;
  experimental?: boolean;
  /** The model takes the restore input (EnhanceOptions.restore); others ignore it. */
  restore?: boolean;
}

export interface Settings {
  provider: Provider;
  threads: number;
  tile: number;
  format: OutputFormat;
  quality: number;
  naming: string;
  keepMetadata: boolean;
  /** Repair noise, JPEG artefacts and blur unless a job says otherwise (EnhanceOptions.restore = 1). */
  repair: boolean;
  outputDir: string;
  defaultModel: ModelId;
}

export interface TrainingRequest {
  command: 'teacher' | 'student' | 'finetune';
  dataDir: string;
  minutes: number;
  preset?: string;
  name?: string;
  extraArgs?: string[];
}

export interface TrainingRun {
  id: string;
  command: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  runDir: string;
  startedAt: string;
  lastEvent: Record<string, unknown> | null;
}

export type DuoscaleEvent =
  | { type: 'job'; job: JobSummary }
  | { type: 'tile'; jobId: JobId; input: string; tile: number; tiles: number; etaSeconds: number | null }
  | { type: 'item'; jobId: JobId; item: JobItemSummary }
  | { type: 'catalog-changed' }
  | { type: 'models-changed' }
  | { type: 'settings-changed'; settings: Settings }
  | { type: 'training'; run: TrainingRun; event: Record<string, unknown> };

/** Every call the UI may make. */
export interface DuoscaleApi {
  /** Enhance one photo; resolves when the job is queued (watch `job` events). */
  enhance(input: { path: string; outputDir?: string; options?: EnhanceOptions }): Promise<JobSummary>;
  batch(req: BatchRequest): Promise<JobSummary>;
  jobs(): Promise<JobSummary[]>;
  pause(input: { jobId: JobId }): Promise<JobSummary>;
  resume(input: { jobId: JobId }): Promise<JobSummary>;
  cancel(input: { jobId: JobId }): Promise<JobSummary>;

  catalogList(query: CatalogQuery): Promise<{ results: ResultRecord[]; total: number }>;
  catalogImage(input: { imageId: number }): Promise<{ image: ImageRecord; results: ResultRecord[] }>;
  /** Deletes the output file and its record; never the original. */
  deleteResult(input: { resultId: number }): Promise<void>;
  /** URL the UI can put in <img src>: only for files the catalog knows. */
  imageUrl(input: { kind: 'original' | 'result' | 'thumb'; id: number }): Promise<string>;
  revealInFolder(input: { path: string }): Promise<void>;

  modelsList(): Promise<ModelInfo[]>;
  modelImport(input: { onnxPath: string }): Promise<ModelInfo>;
  modelRemove(input: { id: ModelId }): Promise<void>;
  modelSetDefault(input: { id: ModelId }): Promise<Settings>;

  settingsGet(): Promise<Settings>;
  settingsSet(patch: Partial<Settings>): Promise<Settings>;

  trainingStart(req: TrainingRequest): Promise<TrainingRun>;
  trainingStop(input: { id: string }): Promise<TrainingRun>;
  trainingList(): Promise<TrainingRun[]>;

  /** Native dialogs (Electron) or a path prompt (web mode). Null when the user cancels. */
  pickFiles(input: { folders: boolean; multiple: boolean }): Promise<string[] | null>;

  onEvent(listener: (e: DuoscaleEvent) => void): () => void;
}

/** Names of the request/response methods (everything except onEvent). */
export type ApiMethod = Exclude<keyof DuoscaleApi, 'onEvent'>;
export const API_METHODS: readonly ApiMethod[] = [
  'enhance', 'batch', 'jobs', 'pause', 'resume', 'cancel',
  'catalogList', 'catalogImage', 'deleteResult', 'imageUrl', 'revealInFolder',
  'modelsList', 'modelImport', 'modelRemove', 'modelSetDefault',
  'settingsGet', 'settingsSet',
  'trainingStart', 'trainingStop', 'trainingList',
  'pickFiles',
] as const;
