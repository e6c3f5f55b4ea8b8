// Tile extraction and feathered blending: pure functions over typed arrays.
//
// Blend weights are separable, w(x, y) = wx_col(x) * wy_row(y), and each axis's weights are
// normalised to sum to exactly 1 at every output pixel. So the blended image needs no weight
// accumulator and an output row is final as soon as the tile rows covering it are done:
// memory stays proportional to (tile height x image width), never to the image area.

import type { AxisPlan, Tile } from './plan.ts';

const smoothstep = (t: number): number => (t <= 0 ? 0 : t >= 1 ? 1 : t * t * (3 - 2 * t));

/**
 * Per-tile weights along one axis at output resolution (`scale` x LR).
 * Returns one Float32Array per tile, of length size*scale, indexed from the tile's start.
 * Between neighbours the cross-fade is a smoothstep over the middle half of their overlap,
 * so the outer quarter of each tile's overlap (where zero padding inside the model hurts
 * most) gets no weight.
 */
export function axisWeights(axis: AxisPlan, scale: number): Float32Array[] {
  const n = axis.starts.length;
  const outLen = axis.length * scale;
  const ws = axis.starts.map(() => new Float32Array(axis.size * scale));
  // For each seam between i and i+1: ramp [lo, hi) in output coordinates.
  const seams: [number, number][] = [];
  for (let i = 0; i + 1 < n; i++) {
    const a = axis.starts[i + 1];
    const b = axis.starts[i] + axis.size;
    const mid = (a + b) / 2;
    const f = Math.max((b - a) / 2, Math.min(b - a, 1));
    seams.push([scale * (mid - f / 2), scale * (mid + f / 2)]);
  }
  const sum = new Float64Array(outLen);
  for (let i = 0; i < n; i++) {
    const x0 = axis.starts[i] * scale;
    const w = ws[i];
    for (let k = 0; k < w.length; k++) {
      const c = x0 + k + 0.5;
      let v = 1;
      if (i > 0) { const [lo, hi] = seams[i - 1]; v *= smoothstep((c - lo) / (hi - lo)); }
      if (i + 1 < n) { const [lo, hi] = seams[i]; v *= 1 - smoothstep((c - lo) / (hi - lo)); }
      w[k] = v;
      sum[x0 + k] += v;
    }
  }
  for (let i = 0; i < n; i++) {
    const x0 = axis.starts[i] * scale;
    const w = ws[i];
    for (let k = 0; k < w.length; k++) w[k] = sum[x0 + k] > 0 ? w[k] / sum[x0 + k] : 0;
  }
  return ws;
}

/** Mirror index into [0, n) (reflect without repeating the edge pixel). */
export function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const p = 2 * (n - 1);
  let m = ((i % p) + p) % p;
  return m < n ? m : p - m;
}

/** Image rows [y0, y1) that extractTile reads for `tile` (reflect padding included). */
export function tileRows(tile: Tile, height: number): [number, number] {
  let lo = Infinity;
  let hi = -1;
  for (let ty = 0; ty < tile.padH; ty++) {
    const sy = reflect(tile.y + ty, height);
    if (sy < lo) lo = sy;
    if (sy > hi) hi = sy;
  }
  return [lo, hi + 1];
}

/**
 * Copies a tile of an interleaved RGB(A) image (Uint8 or Uint16) into a planar float32
 * [3, padH, padW] tensor in [0, 1], reflect-padding past the image's right/bottom edge.
 * `src` may hold only image rows [srcY0, ...) (a band, see tileRows); `out` is reused when given.
 */
export function extractTile(
  src: Uint8Array | Uint16Array, width: number, height: number, channels: number, tile: Tile,
  srcY0 = 0, out?: Float32Array,
): Float32Array {
  const { x, y, padW, padH } = tile;
  const inv = 1 / (src instanceof Uint16Array ? 65535 : 255);
  const plane = padW * padH;
  if (out && out.length !== 3 * plane) throw new RangeError(`extractTile: out has ${out.length} floats, need ${3 * plane}`);
  out ??= new Float32Array(3 * plane);
  for (let ty = 0; ty < padH; ty++) {
    const sy = reflect(y + ty, height) - srcY0;
    if (sy < 0 || (sy + 1) * width * channels > src.length) throw new RangeError(`extractTile: row ${sy + srcY0} is not in the band from row ${srcY0}`);
    const rowBase = sy * width;
    for (let tx = 0; tx < padW; tx++) {
      const sx = reflect(x + tx, width);
      const s = (rowBase + sx) * channels;
      const d = ty * padW + tx;
      out[d] = src[s] * inv;
      out[plane + d] = src[s + 1] * inv;
      out[2 * plane + d] = src[s + 2] * inv;
    }
  }
  return out;
}

/**
 * Adds a model output tile (planar [3, padH*scale, padW*scale]) into an interleaved RGB float
 * band accumulator that covers output rows [bandY0, bandY0 + bandRows) of an image `outWidth` wide.
 */
export function accumulateTile(
  band: Float32Array, bandY0: number, outWidth: number,
  hr: Float32Array, tile: Tile, scale: number, wx: Float32Array, wy: Float32Array,
): void {
  const ow = tile.padW * scale;
  const plane = ow * tile.padH * scale;
  const tw = tile.w * scale;
  const th = tile.h * scale;
  const ox = tile.x * scale;
  const oy = tile.y * scale;
  for (let ty = 0; ty < th; ty++) {
    const wyv = wy[ty];
    if (wyv === 0) continue;
    let d = ((oy + ty - bandY0) * outWidth + ox) * 3;
    let s = ty * ow;
    for (let tx = 0; tx < tw; tx++, d += 3, s++) {
      const w = wyv * wx[tx];
      if (w === 0) continue;
      band[d] += w * hr[s];
      band[d + 1] += w * hr[plane + s];
      band[d + 2] += w * hr[2 * plane + s];
    }
  }
}

/** Float [0,1] -> integer samples, rounding to nearest. */
export function quantize(src: Float32Array, depth16: boolean, out?: Uint8Array | Uint16Array): Uint8Array | Uint16Array {
  const max = depth16 ? 65535 : 255;
  const dst = out ?? (depth16 ? new Uint16Array(src.length) : new Uint8Array(src.length));
  for (let i = 0; i < src.length; i++) {
    const v = src[i] * max + 0.5;
    dst[i] = v <= 0 ? 0 : v >= max ? max : v;
  }
  return dst;
}
