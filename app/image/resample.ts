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

/**
 * Centre-aligned bicubic enlargement of a single-channel plane by integer factor f, producing
 * output rows [r0, r1) only (so an alpha plane can be upscaled band by band).
 * Output pixel (X, Y) samples input coordinate ((X + 0.5) / f - 0.5, (Y + 0.5) / f - 0.5).
 */
export class PlaneUpscaler<T extends Uint8Array | Uint16Array> {
  readonly #src: T;
  readonly #w: number;
  readonly #h: number;
  readonly #f: number;
  readonly #max: number;
  readonly #tx: Taps;
  readonly #ty: Taps;

  constructor(src: T, width: number, height: number, f: number) {
    this.#src = src;
    this.#w = width;
    this.#h = height;
    this.#f = f;
    this.#max = src instanceof Uint16Array ? 65535 : 255;
    this.#tx = taps(width * f, width, f);
    this.#ty = taps(height * f, height, f);
  }

  rows(r0: number, r1: number): T {
    const ow = this.#w * this.#f;
    const out = new (this.#src.constructor as { new (n: number): T })(ow * (r1 - r0));
    if (this.#f === 1) {
      out.set(this.#src.subarray(r0 * this.#w, r1 * this.#w) as any);
      return out;
    }
    const tmp = new Float32Array(this.#w);
    const { idx: ix, w: wx } = this.#tx;
    const { idx: iy, w: wy } = this.#ty;
    const src = this.#src;
    const W = this.#w;
    for (let y = r0; y < r1; y++) {
      tmp.fill(0);
      for (let k = 0; k < 4; k++) {
        const row = iy[y * 4 + k] * W;
        const wk = wy[y * 4 + k];
        for (let x = 0; x < W; x++) tmp[x] += wk * src[row + x];
      }
      const o = (y - r0) * ow;
      for (let x = 0; x < ow; x++) {
        const b = x * 4;
        const v = wx[b] * tmp[ix[b]] + wx[b + 1] * tmp[ix[b + 1]] + wx[b + 2] * tmp[ix[b + 2]] + wx[b + 3] * tmp[ix[b + 3]];
        out[o + x] = v <= 0 ? 0 : v >= this.#max ? this.#max : Math.round(v);
      }
    }
    return out;
  }
}
