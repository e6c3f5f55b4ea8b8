// Validation of every argument that crosses the renderer API (app/api.ts).
//
// Everything arriving over IPC or HTTP is untrusted JSON. `validateApiArgs(method, arg)` checks
// types, ranges, enums, absolute paths and unknown (often misspelled) keys before any work is
// done, and returns a fresh object holding only the checked fields. Failures throw
// `ApiArgumentError` whose message names the method, the field and what would be accepted.
import path from 'node:path';
import type {
  ApiMethod, BatchRequest, CatalogQuery, EnhanceOptions, OutputFormat, Provider, Settings, TrainingRequest,
} from './api.ts';
import { API_METHODS } from './api.ts';

export class ApiArgumentError extends Error {
  readonly code = 'invalid-argument';
  constructor(readonly method: string, readonly field: string, problem: string) {
    super(`${method}: ${field ? `"${field}" ` : ''}${problem}`);
    this.name = 'ApiArgumentError';
  }
}

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['same', 'jpeg', 'png', 'webp', 'tiff', 'avif'];
export const PROVIDERS: readonly Provider[] = ['auto', 'cpu', 'cuda', 'dml', 'coreml'];
export const NAMING_TOKENS = ['name', 'ext', 'scale', 'model', 'seed', 'date'] as const;
export const LIMITS = {
  pathLength: 4096,
  inputs: 10000,
  tileMin: 16,
  tileMax: 4096,
  targetWidthMax: 65535,
  variationsMax: 16,
  threadsMax: 256,
  seedMax: 0xffffffff,
  trainingMinutesMax: 7 * 24 * 60,
  listLimitMax: 1000,
} as const;

type Obj = Record<string, unknown>;

/** A tiny checker bound to one method name, so every message says where it came from. */
class Checker {
  constructor(readonly method: string) {}

  fail(field: string, problem: string): never {
    throw new ApiArgumentError(this.method, field, problem);
  }

  object(value: unknown, field: string, allowed: readonly string[]): Obj {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.fail(field, `must be an object, got ${describe(value)}`);
    }
    for (const key of Object.keys(value as Obj)) {
      if (!allowed.includes(key)) {
        const near = closest(key, allowed);
        this.fail(field ? `${field}.${key}` : key,
          `is not a known field${near ? ` (did you mean "${near}"?)` : ''}; allowed: ${allowed.join(', ') || 'none'}`);
      }
    }
    return value as Obj;
  }

  /** No argument, or an empty object (HTTP transports send `{}` for argument-less calls). */
  none(value: unknown): undefined {
    if (value === undefined || value === null) return undefined;
    this.object(value, '', []);
    return undefined;
  }

  string(value: unknown, field: string, opts: { min?: number; max?: number; pattern?: RegExp; hint?: string } = {}): string {
    if (typeof value !== 'string') this.fail(field, `must be a string, got ${describe(value)}`);
    const s = value as string;
    const min = opts.min ?? 0;
    const max = opts.max ?? 1000;
    if (s.length < min) this.fail(field, min === 1 ? 'must not be empty' : `must be at least ${min} characters`);
    if (s.length > max) this.fail(field, `must be at most ${max} characters (got ${s.length})`);
    if (s.includes('\0')) this.fail(field, 'must not contain NUL characters');
    if (opts.pattern && !opts.pattern.test(s)) this.fail(field, opts.hint ?? `must match ${opts.pattern}`);
    return s;
  }

  absPath(value: unknown, field: string): string {
    const s = this.string(value, field, { min: 1, max: LIMITS.pathLength });
    if (!path.isAbsolute(s)) this.fail(field, `must be an absolute path, got "${s}"`);
    return path.normalize(s);
  }

  int(value: unknown, field: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value)) this.fail(field, `must be an integer, got ${describe(value)}`);
    const n = value as number;
    if (n < min || n > max) this.fail(field, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  number(value: unknown, field: string, minExclusive: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(field, `must be a finite number, got ${describe(value)}`);
    const n = value as number;
    if (n <= minExclusive || n > max) this.fail(field, `must be greater than ${minExclusive} and at most ${max}, got ${n}`);
    return n;
  }

  bool(value: unknown, field: string): boolean {
    if (typeof value !== 'boolean') this.fail(field, `must be true or false, got ${describe(value)}`);
    return value as boolean;
  }

  oneOf<T>(value: unknown, field: string, options: readonly T[]): T {
    if (!options.includes(value as T)) {
      this.fail(field, `must be one of ${options.map((o) => JSON.stringify(o)).join(', ')}, got ${describe(value)}`);
    }
    return value as T;
  }

  isoDate(value: unknown, field: string): string {
    const s = this.string(value, field, { min: 4, max: 40 });
    if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) || Number.isNaN(Date.parse(s))) {
      this.fail(field, `must be an ISO date like 2024-05-31 or 2024-05-31T12:00:00Z, got "${s}"`);
    }
    return s;
  }

  id(value: unknown, field: string): string {
    return this.string(value, field, { min: 1, max: 200, pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
      hint: 'must be letters, digits, ".", "_" or "-" (starting with a letter or digit)' });
  }

  rowId(value: unknown, field: string): number {
    return this.int(value, field, 1, Number.MAX_SAFE_INTEGER);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v === 'object' ? 'an object' : typeof v;
}

/** Nearest allowed key by edit distance (for "did you mean"). */
function closest(key: string, allowed: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = editDistance(key.toLowerCase(), a.toLowerCase());
    if (d < bestD) { bestD = d; best = a; }
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

const ENHANCE_KEYS = ['model', 'scale', 'targetWidth', 'format', 'quality', 'naming', 'tile', 'seed', 'variations',
  'restore', 'keepMetadata', 'force'] as const;

/** A naming template: tokens from NAMING_TOKENS, no folders, nothing that escapes the output folder. */
export function checkNaming(c: Checker, value: unknown, field: string): string {
  const s = c.string(value, field, { min: 1, max: 200 });
  if (/[\\/]/.test(s) || s.includes('..') || /[<>:"|?*\x00-\x1f]/.test(s)) {
    c.fail(field, `must be a file name template without folders or the characters <>:"|?*\\/ (got "${s}")`);
  }
  for (const m of s.matchAll(/\{([^}]*)\}/g)) {
    if (!(NAMING_TOKENS as readonly string[]).includes(m[1])) {
      c.fail(field, `uses unknown token {${m[1]}}; known tokens: ${NAMING_TOKENS.map((t) => `{${t}}`).join(' ')}`);
    }
  }
  return s;
}

function tile(c: Checker, value: unknown, field: string): number {
  const n = c.int(value, field, 0, LIMITS.tileMax);
  if (n !== 0 && n < LIMITS.tileMin) c.fail(field, `must be 0 (automatic) or between ${LIMITS.tileMin} and ${LIMITS.tileMax}, got ${n}`);
  return n;
}

function enhanceOptions(c: Checker, value: unknown, field: string): EnhanceOptions {
  const o = c.object(value, field, ENHANCE_KEYS);
  const out: EnhanceOptions = {};
  const f = (k: string) => `${field}.${k}`;
  if (o.model !== undefined) out.model = c.id(o.model, f('model'));
  if (o.scale !== undefined) out.scale = c.oneOf(o.scale, f('scale'), [1, 2, 4] as const);
  if (o.targetWidth !== undefined) out.targetWidth = c.int(o.targetWidth, f('targetWidth'), 1, LIMITS.targetWidthMax);
  if (o.format !== undefined) out.format = c.oneOf(o.format, f('format'), OUTPUT_FORMATS);
  if (o.quality !== undefined) out.quality = c.int(o.quality, f('quality'), 1, 100);
  if (o.naming !== undefined) out.naming = checkNaming(c, o.naming, f('naming'));
  if (o.tile !== undefined) out.tile = tile(c, o.tile, f('tile'));
  if (o.seed !== undefined) out.seed = c.int(o.seed, f('seed'), 0, LIMITS.seedMax);
  if (o.variations !== undefined) out.variations = c.int(o.variations, f('variations'), 1, LIMITS.variationsMax);
  if (o.restore !== undefined) {
    if (typeof o.restore !== 'number' || !(o.restore >= 0 && o.restore <= 1)) {
      c.fail(f('restore'), `must be a number from 0 (clean photo) to 1 (repair noise, JPEG and blur), got ${JSON.stringify(o.restore)}`);
    }
    out.restore = o.restore as number;
  }
  if (o.keepMetadata !== undefined) out.keepMetadata = c.bool(o.keepMetadata, f('keepMetadata'));
  if (o.force !== undefined) out.force = c.bool(o.force, f('force'));
  return out;
}

const SETTINGS_KEYS = ['provider', 'threads', 'tile', 'format', 'quality', 'naming', 'keepMetadata', 'repair', 'outputDir', 'defaultModel'] as const;

export function validateSettingsPatch(value: unknown, method = 'settingsSet'): Partial<Settings> {
  const c = new Checker(method);
  const o = c.object(value, '', SETTINGS_KEYS);
  const out: Partial<Settings> = {};
  if (o.provider !== undefined) out.provider = c.oneOf(o.provider, 'provider', PROVIDERS);
  if (o.threads !== undefined) out.threads = c.int(o.threads, 'threads', 0, LIMITS.threadsMax);
  if (o.tile !== undefined) out.tile = tile(c, o.tile, 'tile');
  if (o.format !== undefined) out.format = c.oneOf(o.format, 'format', OUTPUT_FORMATS);
  if (o.quality !== undefined) out.quality = c.int(o.quality, 'quality', 1, 100);
  if (o.naming !== undefined) out.naming = checkNaming(c, o.naming, 'naming');
  if (o.keepMetadata !== undefined) out.keepMetadata = c.bool(o.keepMetadata, 'keepMetadata');
  if (o.repair !== undefined) out.repair = c.bool(o.repair, 'repair');
  // '' means "next to the photos' own output choice": the UI asks each time.
  if (o.outputDir !== undefined) out.outputDir = o.outputDir === '' ? '' : c.absPath(o.outputDir, 'outputDir');
  if (o.defaultModel !== undefined) out.defaultModel = o.defaultModel === '' ? '' : c.id(o.defaultModel, 'defaultModel');
  return out;
}

function jobRef(c: Checker, value: unknown): { jobId: string } {
  const o = c.object(value, '', ['jobId']);
  return { jobId: c.string(o.jobId, 'jobId', { min: 1, max: 100, pattern: /^[A-Za-z0-9-]+$/, hint: 'must be a job id as returned by enhance/batch' }) };
}

type Validators = { [M in ApiMethod]: (arg: unknown) => unknown };

const VALIDATORS: Validators = {
  enhance(arg) {
    const c = new Checker('enhance');
    const o = c.object(arg, '', ['path', 'outputDir', 'options']);
    return {
      path: c.absPath(o.path, 'path'),
      ...(o.outputDir !== undefined ? { outputDir: c.absPath(o.outputDir, 'outputDir') } : {}),
      ...(o.options !== undefined ? { options: enhanceOptions(c, o.options, 'options') } : {}),
    };
  },
  batch(arg): BatchRequest {
    const c = new Checker('batch');
    const o = c.object(arg, '', ['inputs', 'outputDir', 'recursive', 'options']);
    if (!Array.isArray(o.inputs)) c.fail('inputs', `must be an array of absolute paths, got ${describe(o.inputs)}`);
    const inputs = o.inputs as unknown[];
    if (inputs.length === 0) c.fail('inputs', 'must name at least one file or folder');
    if (inputs.length > LIMITS.inputs) c.fail('inputs', `may name at most ${LIMITS.inputs} files or folders (got ${inputs.length}); pass folders instead`);
    return {
      inputs: inputs.map((p, i) => c.absPath(p, `inputs[${i}]`)),
      outputDir: c.absPath(o.outputDir, 'outputDir'),
      ...(o.recursive !== undefined ? { recursive: c.bool(o.recursive, 'recursive') } : {}),
      ...(o.options !== undefined ? { options: enhanceOptions(c, o.options, 'options') } : {}),
    };
  },
  jobs: (arg) => new Checker('jobs').none(arg),
  pause: (arg) => jobRef(new Checker('pause'), arg),
  resume: (arg) => jobRef(new Checker('resume'), arg),
  cancel: (arg) => jobRef(new Checker('cancel'), arg),
  catalogList(arg): CatalogQuery {
    const c = new Checker('catalogList');
    if (arg === undefined || arg === null) return {};
    const o = c.object(arg, '', ['search', 'model', 'status', 'from', 'to', 'limit', 'offset']);
    const out: CatalogQuery = {};
    if (o.search !== undefined) out.search = c.string(o.search, 'search', { max: 200 });
    if (o.model !== undefined) out.model = c.id(o.model, 'model');
    if (o.status !== undefined) out.status = c.oneOf(o.status, 'status', ['done', 'failed', 'running'] as const);
    if (o.from !== undefined) out.from = c.isoDate(o.from, 'from');
    if (o.to !== undefined) out.to = c.isoDate(o.to, 'to');
    if (out.from && out.to && Date.parse(out.from) > Date.parse(out.to)) c.fail('from', `must not be after "to" (${out.from} > ${out.to})`);
    if (o.limit !== undefined) out.limit = c.int(o.limit, 'limit', 1, LIMITS.listLimitMax);
    if (o.offset !== undefined) out.offset = c.int(o.offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    return out;
  },
  catalogImage(arg) {
    const c = new Checker('catalogImage');
    const o = c.object(arg, '', ['imageId']);
    return { imageId: c.rowId(o.imageId, 'imageId') };
  },
  deleteResult(arg) {
    const c = new Checker('deleteResult');
    const o = c.object(arg, '', ['resultId']);
    return { resultId: c.rowId(o.resultId, 'resultId') };
  },
  imageUrl(arg) {
    const c = new Checker('imageUrl');
    const o = c.object(arg, '', ['kind', 'id']);
    return { kind: c.oneOf(o.kind, 'kind', ['original', 'result', 'thumb'] as const), id: c.rowId(o.id, 'id') };
  },
  revealInFolder(arg) {
    const c = new Checker('revealInFolder');
    const o = c.object(arg, '', ['path']);
    return { path: c.absPath(o.path, 'path') };
  },
  modelsList: (arg) => new Checker('modelsList').none(arg),
  modelImport(arg) {
    const c = new Checker('modelImport');
    const o = c.object(arg, '', ['onnxPath']);
    const p = c.absPath(o.onnxPath, 'onnxPath');
    if (!p.toLowerCase().endsWith('.onnx')) c.fail('onnxPath', `must be an .onnx file (with its .json manifest next to it), got "${p}"`);
    return { onnxPath: p };
  },
  modelRemove(arg) {
    const c = new Checker('modelRemove');
    const o = c.object(arg, '', ['id']);
    return { id: c.id(o.id, 'id') };
  },
  modelSetDefault(arg) {
    const c = new Checker('modelSetDefault');
    const o = c.object(arg, '', ['id']);
    return { id: c.id(o.id, 'id') };
  },
  settingsGet: (arg) => new Checker('settingsGet').none(arg),
  settingsSet: (arg) => validateSettingsPatch(arg, 'settingsSet'),
  trainingStart(arg): TrainingRequest {
    const c = new Checker('trainingStart');
    const o = c.object(arg, '', ['command', 'dataDir', 'minutes', 'preset', 'name', 'extraArgs']);
    const out: TrainingRequest = {
      command: c.oneOf(o.command, 'command', ['teacher', 'student', 'finetune'] as const),
      dataDir: c.absPath(o.dataDir, 'dataDir'),
      minutes: c.number(o.minutes, 'minutes', 0, LIMITS.trainingMinutesMax),
    };
    if (o.preset !== undefined) out.preset = c.id(o.preset, 'preset');
    if (o.name !== undefined) out.name = c.id(o.name, 'name');
    if (o.extraArgs !== undefined) {
      if (!Array.isArray(o.extraArgs)) c.fail('extraArgs', `must be an array of strings, got ${describe(o.extraArgs)}`);
      const xs = o.extraArgs as unknown[];
      if (xs.length > 64) c.fail('extraArgs', `may hold at most 64 arguments (got ${xs.length})`);
      out.extraArgs = xs.map((x, i) => c.string(x, `extraArgs[${i}]`, { max: 1000 }));
    }
    return out;
  },
  trainingStop(arg) {
    const c = new Checker('trainingStop');
    const o = c.object(arg, '', ['id']);
    return { id: c.id(o.id, 'id') };
  },
  trainingList: (arg) => new Checker('trainingList').none(arg),
  pickFiles(arg) {
    const c = new Checker('pickFiles');
    const o = c.object(arg, '', ['folders', 'multiple']);
    return { folders: c.bool(o.folders, 'folders'), multiple: c.bool(o.multiple, 'multiple') };
  },
};

/**
 * Checks the argument of one API call and returns a clean copy of it.
 * Throws ApiArgumentError for an unknown method or any bad field.
 */
export function validateApiArgs<M extends ApiMethod>(method: M, arg: unknown): Parameters<import('./api.ts').DuoscaleApi[M]>[0] {
  if (typeof method !== 'string' || !(API_METHODS as readonly string[]).includes(method)) {
    throw new ApiArgumentError(String(method), '', `is not an API method; known methods: ${API_METHODS.join(', ')}`);
  }
  return VALIDATORS[method](arg) as Parameters<import('./api.ts').DuoscaleApi[M]>[0];
}

export function isApiMethod(name: unknown): name is ApiMethod {
  return typeof name === 'string' && (API_METHODS as readonly string[]).includes(name);
}
