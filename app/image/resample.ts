// Centre-aligned resampling we do ourselves instead of with sharp (DESIGN.md "Measured
// pitfalls": sharp's enlargements are shifted by half an output pixel and its x4 reduction
// brightens by ~0.5 levels). Both functions work on row bands so they stream.

/**
 * Box-reduces interleaved samples by an integer factor k in both directions (mean of k x k,
 * rounded to nearest). `rows` must be a multiple of k; width is cut to a multiple of k.
 * Unbiased and aligned: output pixel j covers input pixels [j*k, j*k + k).
 */
export function boxReduce<T extends Uint8Array | Uint16Array>(
  src: T, width: number, rows: number, channels: number, k: number,
): T {
  if (k === 1) return src;
  const ow = Math.floor(width / k);
  const oh = Math.floor(rows / k);
  const out = new (src.constructor as { new (n: number): T })(ow * oh * channels);
  const acc = new Float64Array(ow * channels);
  const inv = 1 / (k * k);
  for (let oy = 0; oy < oh; oy++) {
    acc.fill(0);
    for (let dy = 0; dy < k; dy++) {
      const base = (oy * k + dy) * width * channels;
      for (let ox = 0; ox < ow; ox++) {
        const s0 = base + ox * k * channels;
        for (let dx = 0; dx < k; dx++) {
          const s = s0 + dx * channels;
          for (let c = 0; c < channels; c++) acc[ox * channels + c] += src[s + c];
        }
      }
    }
    const o = oy * ow * channels;
    for (let i = 0; i < acc.length; i++) out[o + i] = Math.round(acc[i] * inv);
  }
  return out;
}

/** Keys cubic with a = -0.5 (Catmull-Rom). */
function cubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

interface Taps { idx: Int32Array; w: Float32Array }

/** 4 taps per output position for a centre-aligned factor-f enlargement, edges clamped. */
function taps(outLen: number, inLen: number, f: number): Taps {
  const idx = new Int32Array(outLen * 4);
  const w = new Float32Array(outLen * 4);
  for (let o = 0; o < outLen; o++) {
    const u = (o + 0.5) / f - 0.5;
    const i0 = Math.floor(u);
    let sum = 0;
    for (let k = 0; k < 4; k++) {
      const i = i0 - 1 + k;
      const wk = cubic(u - i);
      idx[o * 4 + k] = Math.min(inLen - 1, Math.max(0, i));
      w[o * 4 + k] = wk;
      sum += wk;
    }
    for (let k = 0; k < 4; k++) w[o * 4 + k] /= sum;
  }
  return { idx, w };
}

/** Rows [y0, y1) of a single-channel plane. */
export type PlaneRows<T> = (y0: number, y1: number) => T;

/**
 * Centre-aligned bicubic enlargement of a single-channel plane by integer factor f, producing
 * output rows [r0, r1) only (so an alpha plane can be upscaled band by band). The plane is
 * either all its samples or a reader of its rows (then only the rows a band needs are read).
 * Output pixel (X, Y) samples input coordinate ((X + 0.5) / f - 0.5, (Y + 0.5) / f - 0.5).
 */
export class PlaneUpscaler<T extends Uint8Array | Uint16Array> {
  readonly #read: PlaneRows<T>;
  readonly #w: number;
  readonly #h: number;
  readonly #f: number;
  readonly #tx: Taps;
  readonly #ty: Taps;

  constructor(src: T | PlaneRows<T>, width: number, height: number, f: number) {
    this.#read = typeof src === 'function' ? src : (y0, y1) => src.subarray(y0 * width, y1 * width) as T;
    this.#w = width;
    this.#h = height;
    this.#f = f;
    this.#tx = taps(width * f, width, f);
    this.#ty = taps(height * f, height, f);
  }

  rows(r0: number, r1: number): T {
    const ow = this.#w * this.#f;
    const W = this.#w;
    if (this.#f === 1) {
      const src = this.#read(r0, r1);
      const out = new (src.constructor as { new (n: number): T })(ow * (r1 - r0));
      out.set(src.subarray(0, (r1 - r0) * W) as any);
      return out;
    }
    const { idx: ix, w: wx } = this.#tx;
    const { idx: iy, w: wy } = this.#ty;
    // Input rows these output rows touch (taps are clamped to the plane, so always in range).
    let lo = this.#h;
    let hi = 0;
    for (let k = r0 * 4; k < r1 * 4; k++) { lo = Math.min(lo, iy[k]); hi = Math.max(hi, iy[k]); }
    const src = this.#read(lo, hi + 1);
    const max = src instanceof Uint16Array ? 65535 : 255;
    const out = new (src.constructor as { new (n: number): T })(ow * (r1 - r0));
    const tmp = new Float32Array(W);
    for (let y = r0; y < r1; y++) {
      tmp.fill(0);
      for (let k = 0; k < 4; k++) {
        const row = (iy[y * 4 + k] - lo) * W;
        const wk = wy[y * 4 + k];
        for (let x = 0; x < W; x++) tmp[x] += wk * src[row + x];
      }
      const o = (y - r0) * ow;
      for (let x = 0; x < ow; x++) {
        const b = x * 4;
        const v = wx[b] * tmp[ix[b]] + wx[b + 1] * tmp[ix[b + 1]] + wx[b + 2] * tmp[ix[b + 2]] + wx[b + 3] * tmp[ix[b + 3]];
        out[o + x] = v <= 0 ? 0 : v >= max ? max : Math.round(v);
      }
    }
    return out;
  }
}
