// A contract-conforming ONNX model written by the tests themselves: nearest-neighbour x4 of
// `lr` plus `noiseGain` x (channel mean of `noise`), clipped to [0, 1].
//
// With noiseGain = 0 it is an exact replicating upscaler, so 1x output (the 4x result
// box-reduced) must equal the input up to rounding: that isolates the pipeline's colour,
// depth, orientation and alpha handling from what a trained model does to colours. It runs in
// the real onnxruntime like any other model; only the weights are chosen instead of trained.
//
// The protobuf is encoded by hand (field numbers from onnx.proto3), opset 13.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const vInt = (field: number, n: number | bigint) => Buffer.from([...key(field, 0), ...varint(n)]);
const vBytes = (field: number, b: Buffer | string) => {
  const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  return Buffer.concat([Buffer.from([...key(field, 2), ...varint(buf.length)]), buf]);
};
const vF32 = (field: number, f: number) => { const b = Buffer.alloc(4); b.writeFloatLE(f); return Buffer.concat([Buffer.from(key(field, 5)), b]); };
const msg = (...parts: Buffer[]) => Buffer.concat(parts);

const FLOAT = 1;
const INT64 = 7;

function tensor(name: string, dataType: number, dims: number[], raw: Buffer): Buffer {
  return msg(...dims.map((d) => vInt(1, d)), vInt(2, dataType), vBytes(8, name), vBytes(9, raw));
}
function f32(name: string, dims: number[], values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return tensor(name, FLOAT, dims, b);
}
// AttributeProto: name=1, f=2, i=3, s=4, ints=8, type=20 (FLOAT=1, INT=2, STRING=3, INTS=7)
const attrInt = (name: string, i: number) => msg(vBytes(1, name), vInt(3, i), vInt(20, 2));
const attrInts = (name: string, xs: number[]) => msg(vBytes(1, name), ...xs.map((x) => vInt(8, x)), vInt(20, 7));
const attrStr = (name: string, s: string) => msg(vBytes(1, name), vBytes(4, s), vInt(20, 3));
function node(op: string, inputs: string[], outputs: string[], attrs: Buffer[] = []): Buffer {
  return msg(...inputs.map((i) => vBytes(1, i)), ...outputs.map((o) => vBytes(2, o)), vBytes(3, `${op}_${outputs[0]}`), vBytes(4, op), ...attrs.map((a) => vBytes(5, a)));
}
function valueInfo(name: string, dims: (number | string)[]): Buffer {
  const shape = msg(...dims.map((d) => vBytes(1, typeof d === 'number' ? vInt(1, d) : vBytes(2, d))));
  const tt = msg(vInt(1, FLOAT), vBytes(2, shape));
  return msg(vBytes(1, name), vBytes(2, vBytes(1, tt)));
}

/** ONNX bytes of the replicating x`scale` model. */
export interface TestModelOptions {
  noiseChannels?: number;
  /** Weight of the per-pixel channel mean of `noise` added to the output. */
  noiseGain?: number;
  scale?: number;
  /** 'nearest' replicates pixels; 'linear' is a smooth (half-pixel) bilinear upscale. */
  mode?: 'nearest' | 'linear';
  /**
   * Adds meanGain x (mean of the whole input tile - 0.5): a stand-in for the per-tile
   * statistics (instance/group norm) of real networks, which make tiles disagree at seams.
   */
  meanGain?: number;
  /**
   * Adds a third input `restore` [1] and restoreGain x restore to every output pixel: a stand-in
   * for a restore-conditioned model (manifest "restore").
   */
  restoreGain?: number;
}

export function identityModelBytes(opts: TestModelOptions = {}): Buffer {
  const C = opts.noiseChannels ?? 48;
  const s = opts.scale ?? 4;
  const resizeAttrs = opts.mode === 'linear'
    ? [attrStr('mode', 'linear'), attrStr('coordinate_transformation_mode', 'half_pixel')]
    : [attrStr('mode', 'nearest'), attrStr('coordinate_transformation_mode', 'asymmetric'), attrStr('nearest_mode', 'floor')];
  const nodes = [
    node('ReduceMean', ['noise'], ['nmean'], [attrInts('axes', [1]), attrInt('keepdims', 1)]),
    node('Mul', ['nmean', 'gain'], ['nscaled']),
    node('ReduceMean', ['lr'], ['tmean'], [attrInts('axes', [1, 2, 3]), attrInt('keepdims', 1)]),
    node('Sub', ['tmean', 'half'], ['tcentred']),
    node('Mul', ['tcentred', 'mgain'], ['tshift']),
    node('Add', ['lr', 'nscaled'], ['shifted0']),
    node('Add', ['shifted0', 'tshift'], opts.restoreGain !== undefined ? ['shifted1'] : ['shifted']),
    ...(opts.restoreGain !== undefined ? [
      node('Mul', ['restore', 'rgain'], ['rshift']),
      node('Add', ['shifted1', 'rshift'], ['shifted']),
    ] : []),
    node('Resize', ['shifted', '', 'scales'], ['up'], resizeAttrs),
    node('Clip', ['up', 'lo', 'hi'], ['hr']),
  ];
  const inits = [
    f32('gain', [], [opts.noiseGain ?? 0]),
    f32('mgain', [], [opts.meanGain ?? 0]),
    ...(opts.restoreGain !== undefined ? [f32('rgain', [], [opts.restoreGain])] : []),
    f32('half', [], [0.5]),
    f32('scales', [4], [1, 1, s, s]),
    f32('lo', [], [0]),
    f32('hi', [], [1]),
  ];
  const graph = msg(
    ...nodes.map((n) => vBytes(1, n)),
    vBytes(2, 'identity'),
    ...inits.map((t) => vBytes(5, t)),
    vBytes(11, valueInfo('lr', [1, 3, 'H', 'W'])),
    vBytes(11, valueInfo('noise', [1, C, 'H', 'W'])),
    ...(opts.restoreGain !== undefined ? [vBytes(11, valueInfo('restore', [1]))] : []),
    vBytes(12, valueInfo('hr', [1, 3, 'H4', 'W4'])),
  );
  const opset = msg(vBytes(1, ''), vInt(2, 13));
  return msg(vInt(1, 7), vBytes(2, 'duoscale-tests'), vBytes(7, graph), vBytes(8, opset));
}

/** A full manifest for `onnx` bytes named `name`. */
export function manifestFor(name: string, onnx: Buffer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    format: 1, name, task: 'general', scale: 4, steps: 1, onnx: `${name}.onnx`,
    sha256: createHash('sha256').update(onnx).digest('hex'),
    inputs: { lr: { shape: ['1', '3', 'H', 'W'], range: [0, 1] }, noise: { shape: ['1', '48', 'H', 'W'], distribution: 'standard_normal' } },
    noise_shape: { channels: 48, height: 'H', width: 'W' },
    output: { name: 'hr', shape: ['1', '3', '4*H', '4*W'] },
    pad_multiple: 8, tile: { size: 64, overlap: 8 }, params: 0, precision: 'fp32',
    training: { data: 'none: weights chosen by the tests', steps: 0, seed: 0, trainer_version: 'tests', preset: 'identity', hardware: 'n/a', wall_minutes: 0 },
    metrics: {}, experimental: true, license: 'MIT',
    ...extra,
  };
}

/** Writes NAME.onnx + NAME.json (+ NAME.md) into dir; returns the .onnx path. */
export function writeIdentityModel(dir: string, name = 'identity-x4', opts: TestModelOptions & { manifest?: Record<string, unknown> } = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const onnx = identityModelBytes(opts);
  const p = path.join(dir, `${name}.onnx`);
  fs.writeFileSync(p, onnx);
  const restore = opts.restoreGain !== undefined ? { restore: { input: 'restore', shape: ['1'], range: [0, 1] } } : {};
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(manifestFor(name, onnx, { ...restore, ...opts.manifest }), null, 2));
  fs.writeFileSync(path.join(dir, `${name}.md`), `# ${name}\n\nReplicating x4 model written by the tests.\n`);
  return p;
}
