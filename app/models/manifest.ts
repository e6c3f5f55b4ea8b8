// Model manifest (format 1): types and validation.
//
// The contract is in DESIGN.md ("Model files") and the coordinator's brief. A manifest that
// fails any check here is refused as a whole with one message listing every problem, so the
// user can fix the file in one go.

import { DuoscaleError } from '../errors.ts';

export interface ManifestFormat1 {
  format: 1;
  name: string;
  task: string;
  scale: number;
  steps: number;
  onnx: string;
  sha256: string;
  inputs: {
    lr: { shape: string[]; range: [number, number] };
    noise?: { shape: string[]; distribution: string };
  };
  noise_shape: { channels: number; height: string; width: string };
  /**
   * How strongly the graph scales its noise input, already applied inside it (1 = the method's
   * prior, 0 = deterministic: the graph ignores the noise, so the engine feeds zeros and skips
   * drawing it). Absent in older manifests, which means 1.
   */
  noise_strength?: number;
  /**
   * A restore-conditioned model takes a third graph input, one float32 in [0, 1] for the whole
   * image: 0 = the photo is a clean downscale (keep fidelity), 1 = it is damaged (noise, JPEG,
   * blur) and the model should repair it. Absent: the graph has no such input.
   * noise_strength: prior-noise strength the graph adds per unit of restore (repair draws texture
   * from the noise input). Absent or 0: at noise_strength 0 the output never depends on the noise.
   */
  restore?: { input: string; shape?: string[]; range: [number, number]; meaning?: string; noise_strength?: number };
  /**
   * true: the model's full-resolution pixel head reads the noise input itself and draws texture
   * from it at any noise_strength, so the engine always draws the noise (seeded, by pixel
   * position) and the output depends on the seed. Absent or false: noise_strength alone decides.
   */
  head_noise?: boolean;
  output: { name: string; shape: string[] };
  pad_multiple: number;
  tile: { size: number; overlap: number };
  params: number;
  precision: 'fp32' | 'fp16';
  training: Record<string, unknown>;
  metrics: Record<string, unknown>;
  experimental?: boolean;
  license: string;
  [extra: string]: unknown;
}

/** Model names double as ids and file names: keep them portable. */
export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

type Check = (m: any) => string | null;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min: number): boolean => Number.isInteger(v) && (v as number) >= min;

const CHECKS: [string, Check][] = [
  ['format', (m) => (m.format === 1 ? null : `must be 1 (got ${JSON.stringify(m.format)}); this app reads manifest format 1`)],
  ['name', (m) => (typeof m.name === 'string' && MODEL_NAME_RE.test(m.name) ? null : 'must be 1-64 letters, digits, ".", "_" or "-"')],
  ['task', (m) => (typeof m.task === 'string' && m.task.length > 0 ? null : 'must be a non-empty string such as "general" or "face"')],
  ['scale', (m) => ([1, 2, 4, 8].includes(m.scale) ? null : 'must be 1, 2, 4 or 8')],
  ['steps', (m) => (isInt(m.steps, 1) ? null : 'must be an integer >= 1')],
  ['onnx', (m) => (typeof m.onnx === 'string' && /^[^/\\]+\.onnx$/.test(m.onnx) ? null : 'must be a file name ending in .onnx, in the same folder')],
  ['sha256', (m) => (typeof m.sha256 === 'string' && /^[0-9a-f]{64}$/i.test(m.sha256) ? null : 'must be the 64-digit hex sha256 of the .onnx file')],
  ['inputs.lr', (m) => (isObj(m.inputs) && isObj(m.inputs.lr) && Array.isArray(m.inputs.lr.shape) && m.inputs.lr.shape.length === 4 ? null : 'must give the 4-D shape of the "lr" input')],
  ['noise_shape', (m) => (isObj(m.noise_shape) && isInt(m.noise_shape.channels, 0) ? null : 'must give {channels, height, width}; channels an integer >= 0')],
  ['noise_shape.height', (m) => (!isObj(m.noise_shape) || m.noise_shape.channels === 0 || m.noise_shape.height === 'H' ? null : 'only "H" (same size as the lr input) is supported')],
  ['noise_shape.width', (m) => (!isObj(m.noise_shape) || m.noise_shape.channels === 0 || m.noise_shape.width === 'W' ? null : 'only "W" (same size as the lr input) is supported')],
  ['head_noise', (m) => (m.head_noise === undefined || typeof m.head_noise === 'boolean' ? null : 'must be true or false when present')],
  ['noise_strength', (m) => (m.noise_strength === undefined || (typeof m.noise_strength === 'number' && m.noise_strength >= 0 && m.noise_strength <= 1) ? null : 'must be a number from 0 to 1 when present')],
  ['restore', (m) => (m.restore === undefined || (isObj(m.restore) && typeof m.restore.input === 'string' && m.restore.input.length > 0
    && Array.isArray(m.restore.range) && m.restore.range[0] === 0 && m.restore.range[1] === 1
    && (m.restore.noise_strength === undefined || (typeof m.restore.noise_strength === 'number'
      && m.restore.noise_strength >= 0 && m.restore.noise_strength <= 1)))
    ? null : 'must be {input: NAME, range: [0, 1], noise_strength?: 0 to 1} when present')],
  ['output', (m) => (isObj(m.output) && typeof m.output.name === 'string' && m.output.name.length > 0 ? null : 'must give the output tensor name')],
  ['pad_multiple', (m) => (isInt(m.pad_multiple, 1) && m.pad_multiple <= 256 ? null : 'must be an integer from 1 to 256')],
  ['tile', (m) => (isObj(m.tile) && isInt(m.tile.size, 8) && isInt(m.tile.overlap, 0) && m.tile.overlap * 4 <= m.tile.size ? null : 'must be {size >= 8, overlap >= 0 with overlap <= size/4} in LR pixels')],
  ['params', (m) => (isInt(m.params, 0) ? null : 'must be the parameter count (integer)')],
  ['precision', (m) => (m.precision === 'fp32' || m.precision === 'fp16' ? null : 'must be "fp32" or "fp16"')],
  ['training', (m) => (isObj(m.training) ? null : 'must be an object saying how the model was trained (data, steps, seed, trainer_version)')],
  ['metrics', (m) => (isObj(m.metrics) ? null : 'must be an object (may be empty)')],
  ['experimental', (m) => (m.experimental === undefined || typeof m.experimental === 'boolean' ? null : 'must be true or false when present')],
  ['license', (m) => (typeof m.license === 'string' ? null : 'must be a string')],
];

/** Every problem of a parsed manifest, as "field: what is wrong". Empty when valid. */
export function manifestProblems(m: unknown): string[] {
  if (!isObj(m)) return ['the manifest must be a JSON object'];
  const out: string[] = [];
  for (const [field, check] of CHECKS) {
    let msg: string | null;
    try { msg = check(m); } catch { msg = 'is malformed'; }
    if (msg) out.push(`"${field}" ${msg}`);
  }
  return out;
}

/**
 * Parses and validates manifest JSON text.
 * @throws {DuoscaleError} E_MODEL_MANIFEST listing every problem.
 */
export function parseManifest(text: string, file: string): ManifestFormat1 {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new DuoscaleError('E_MODEL_MANIFEST', `the model manifest is not valid JSON (${(e as Error).message})`, {
      file, hint: 'Re-export the model with the trainer or fix the JSON by hand' });
  }
  const problems = manifestProblems(raw);
  if (problems.length) {
    throw new DuoscaleError('E_MODEL_MANIFEST', `the model manifest is refused: ${problems.join('; ')}`, {
      file, hint: 'Re-export the model with `python -m duoscale_trainer export`, or fix these fields' });
  }
  return raw as ManifestFormat1;
}
