// The tile loop: plan -> extract -> noise -> model -> feathered accumulate -> rows out.
//
// Memory: the input is read band by band (req.rows: only the LR rows the current tile row
// needs), output rows are handed to the sink as soon as no later tile can touch them, so the
// only float buffer is one tile-row band (tile height x output width, see tiling/blend.ts),
// and the per-tile input tensors (lr, noise) are allocated once per plan and reused. So peak
// memory depends on the tile size and the output width, never on the image height. (Each
// tile's output array is new, from onnxruntime; V8 collects those once ~64 MB of them are
// dead, a fixed allowance whatever the image size.)
// When a tile fails for memory, the tile size is halved and the image is started again
// (sink.reset() first), down to a minimum size.

import * as ort from 'onnxruntime-node';
import { DuoscaleError, throwIfAborted } from '../errors.ts';
import { accumulateTile, axisWeights, extractTile, tileRows } from '../tiling/blend.ts';
import { plan as planTiles, shrinkTile, type Tile, type TilePlan } from '../tiling/plan.ts';
import { noiseWindow } from './noise.ts';
import type { ModelSession } from './session.ts';

export interface RowSink {
  /** Final output rows [y0, y1) as interleaved RGB float in [0,1], outWidth * (y1-y0) * 3. */
  rows(data: Float32Array, y0: number, y1: number): Promise<void> | void;
  /** Called before starting over with a smaller tile; drop everything received so far. */
  reset(): Promise<void> | void;
}

/**
 * Reads LR image rows [y0, y1) as interleaved samples (`channels` per pixel, row-major). The
 * result is only used until the next call, so a reader may reuse one buffer.
 */
export type RowReader = (y0: number, y1: number) => Uint8Array | Uint16Array | Promise<Uint8Array | Uint16Array>;

export interface RunTilesRequest {
  session: ModelSession;
  /**
   * The LR image (sRGB, interleaved; channels past the third, e.g. alpha, are ignored): either
   * all its samples, or a reader of row bands (what enhanceFile uses, so the decoded photo
   * never sits in memory whole).
   */
  pixels?: Uint8Array | Uint16Array;
  rows?: RowReader;
  width: number;
  height: number;
  channels: number;
  seed: number;
  /** The restore input (0 = clean downscale, 1 = repair damage) for models that take one; default 0. */
  restore?: number;
  tile: number;
  overlap: number;
  sink: RowSink;
  signal?: AbortSignal;
  onTile?: (done: number, total: number) => void;
  /** Name of the photo, for error messages. */
  file?: string;
  /** Smallest tile tried by shrink-and-retry (LR pixels). */
  minTile?: number;
  /**
   * Test hook standing in for a GPU/CPU allocation failure, which cannot be provoked
   * reliably here: returns true when a tile of this size should fail as out-of-memory.
   */
  simulateOutOfMemory?: (tile: Tile) => boolean;
}

export interface RunTilesResult {
  plan: TilePlan;
  /** Tile sizes tried, in order; more than one means shrink-and-retry happened. */
  tileSizes: number[];
}

const MEMORY_RE = /alloc|out of memory|\boom\b|bad_alloc|memory/i;

export function isMemoryError(e: unknown): boolean {
  return e instanceof Error && (e.name === 'OutOfMemoryError' || MEMORY_RE.test(e.message));
}

/**
 * Reusable per-tile input tensors (every tile of a plan has the same padded size). The output
 * cannot be reused: onnxruntime-node returns a fresh array even for a preallocated output.
 */
export interface TileBuffers { lr: Float32Array; noise: Float32Array | null }

export function tileBuffers(ms: ModelSession, tile: Tile): TileBuffers {
  const px = tile.padW * tile.padH;
  return { lr: new Float32Array(3 * px), noise: ms.noiseName ? new Float32Array(ms.noiseChannels * px) : null };
}

function zeroNoise(n: number, buf?: Float32Array): Float32Array {
  if (buf && buf.length === n) return buf.fill(0);
  return new Float32Array(n);
}

/** One tile through the model: planar [3,padH,padW] in, planar [3,s*padH,s*padW] out. */
export async function runTile(ms: ModelSession, lr: Float32Array, tile: Tile, seed: number, bufs?: TileBuffers, restore?: number): Promise<Float32Array> {
  const feeds: Record<string, ort.Tensor> = {
    [ms.lrName]: new ort.Tensor('float32', lr, [1, 3, tile.padH, tile.padW]),
  };
  // One value for the whole photo, so every tile is repaired alike and no seam can appear.
  if (ms.restoreName) feeds[ms.restoreName] = new ort.Tensor('float32', Float32Array.of(restore ?? 0), [1]);
  if (ms.noiseName) {
    // A deterministic model (noise_strength 0) multiplies its noise by zero: feed zeros, skip the
    // draw. A model with repair noise (restore.noise_strength) draws it once repair is on, and one
    // whose pixel head reads the noise (head_noise) always does, keyed by the seed and the pixel
    // position like any stochastic model, so tiles agree where they overlap.
    const m = ms.model.manifest;
    const repairNoise = ms.restoreName !== null && (restore ?? 0) > 0 && (m.restore?.noise_strength ?? 0) > 0;
    const noise = m.noise_strength === 0 && !repairNoise && m.head_noise !== true
      ? zeroNoise(ms.noiseChannels * tile.padW * tile.padH, bufs?.noise ?? undefined)
      : noiseWindow(seed, ms.noiseChannels, tile.x, tile.y, tile.padW, tile.padH, bufs?.noise ?? undefined);
    feeds[ms.noiseName] = new ort.Tensor('float32', noise, [1, ms.noiseChannels, tile.padH, tile.padW]);
  }
  const out = await ms.session.run(feeds);
  const hr = out[ms.outputName];
  const s = ms.model.manifest.scale;
  const dims = hr.dims;
  if (dims.length !== 4 || dims[1] !== 3 || dims[2] !== tile.padH * s || dims[3] !== tile.padW * s) {
    throw new DuoscaleError('E_INFERENCE', `the model returned shape [${dims.join(',')}], expected [1,3,${tile.padH * s},${tile.padW * s}]`, {
      file: ms.model.onnxPath, hint: 'The manifest\'s scale does not match the model; re-export it' });
  }
  const data = hr.data as Float32Array;
  for (const t of Object.values(out)) if (t !== hr) t.dispose?.();
  return data;
}

async function runOnce(req: RunTilesRequest, p: TilePlan): Promise<void> {
  const s = req.session.model.manifest.scale;
  const outW = req.width * s;
  const outH = req.height * s;
  const wxs = axisWeights(p.cols, s);
  const wys = axisWeights(p.rows, s);
  const bandRows = p.rows.size * s;
  // One band: after a tile row its finished rows go out and the still-open ones (the overlap
  // with the next tile row) move to the top.
  const band = new Float32Array(bandRows * outW * 3);
  const bufs = tileBuffers(req.session, p.tiles[0]);
  const read: RowReader = req.rows ?? ((y0, y1) => req.pixels!.subarray(y0 * req.width * req.channels, y1 * req.width * req.channels));
  let bandY0 = 0;
  const nCols = p.cols.starts.length;
  const nRows = p.rows.starts.length;
  let done = 0;
  for (let r = 0; r < nRows; r++) {
    const y0 = p.rows.starts[r] * s;
    if (y0 !== bandY0) {
      // Shift the still-open rows [y0, bandY0 + bandRows) to the top of the band.
      const from = (y0 - bandY0) * outW * 3;
      band.copyWithin(0, from);
      band.fill(0, band.length - from);
      bandY0 = y0;
    }
    const [r0, r1] = tileRows(p.tiles[r * nCols], req.height);
    const src = await read(r0, r1);
    if (src.length < (r1 - r0) * req.width * req.channels) {
      throw new RangeError(`row reader returned ${src.length} samples for rows ${r0}-${r1} of a ${req.width}-px image`);
    }
    for (let c = 0; c < nCols; c++) {
      throwIfAborted(req.signal, req.file);
      const tile = p.tiles[r * nCols + c];
      if (req.simulateOutOfMemory?.(tile)) {
        const e = new Error(`simulated allocation failure for a ${tile.padW}x${tile.padH} tile`);
        e.name = 'OutOfMemoryError';
        throw e;
      }
      const lr = extractTile(src, req.width, req.height, req.channels, tile, r0, bufs.lr);
      const hr = await runTile(req.session, lr, tile, req.seed, bufs, req.restore);
      accumulateTile(band, bandY0, outW, hr, tile, s, wxs[c], wys[r]);
      done++;
      req.onTile?.(done, p.tiles.length);
    }
    const end = r + 1 < nRows ? p.rows.starts[r + 1] * s : outH;
    await req.sink.rows(band.subarray(0, (end - bandY0) * outW * 3), bandY0, end);
  }
}

/**
 * Runs the whole image through the model tile by tile and streams the blended rows to the sink.
 * @throws {DuoscaleError} E_CANCELLED, E_OUT_OF_MEMORY (even the smallest tile failed), E_INFERENCE
 */
export async function runTiles(req: RunTilesRequest): Promise<RunTilesResult> {
  const m = req.session.model.manifest;
  if (!req.pixels === !req.rows) throw new TypeError('runTiles: give exactly one of pixels and rows');
  let tile = req.tile;
  const tileSizes: number[] = [];
  for (;;) {
    const p = planTiles(req.width, req.height, tile, req.overlap, m.pad_multiple);
    tileSizes.push(p.tile);
    try {
      await runOnce(req, p);
      return { plan: p, tileSizes };
    } catch (e) {
      if (e instanceof DuoscaleError || !isMemoryError(e)) {
        if (e instanceof DuoscaleError) throw e;
        throw new DuoscaleError('E_INFERENCE', `the model failed on this image (${(e as Error).message.split('\n')[0]})`, {
          file: req.file, hint: 'Try another execution provider (--provider cpu) or a smaller tile (--tile 64)', cause: e });
      }
      const next = shrinkTile(p.tile, m.pad_multiple, req.minTile ?? 32);
      if (next === null) {
        throw new DuoscaleError('E_OUT_OF_MEMORY', `not enough memory even with ${p.tile}px tiles`, {
          file: req.file, hint: 'Close other programs, use --provider cpu, or choose a smaller model', cause: e });
      }
      await req.sink.reset();
      tile = next;
    }
  }
}
