// Seeded Gaussian noise for the model's `noise` input.
//
// Counter-based, not a stream: the value at (seed, channel, y, x) in *image* coordinates is
// a pure function of those four integers, so the noise a pixel sees is the same whichever
// tile it falls in and however big the tiles are. That keeps tiled output close to
// whole-image output and makes a seed reproducible across tile sizes and machines.
//
// Generator: murmur3's 32-bit finaliser (fmix32) as an integer hash, Box-Muller on pairs of
// horizontally adjacent pixels (x = 2k, 2k+1 share one hash pair, k = floor(x / 2)):
//   key = fmix32(fmix32(fmix32(seed ^ 0x9E3779B9) ^ ((c + 1) * 0x85EBCA6B)) ^ (y * 0xC2B2AE35))
//   h1  = fmix32(key ^ (k * 0x27D4EB2F)),  h2 = fmix32(h1 ^ 0x165667B1)
//   r   = sqrt(-2 ln((h1 + 0.5) / 2^32)),  a = h2 >>> 18 (14-bit angle index)
//   z   = r cos t for even x, r sin t for odd x, t = 2 pi (a + 0.5) / 2^14
// (cos/sin come from a 2^14-entry table: twice as fast as Math.cos/sin, and an angle step of
// 0.0004 rad changes nothing a model can see.)
// All products are 32-bit (Math.imul); coordinates may be negative or past the image
// (padding) and are hashed as int32. Seeds are taken modulo 2^32.

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const INV_2_32 = 1 / 4294967296;
const ANGLE_BITS = 14;
const ANGLES = 1 << ANGLE_BITS;
const ANGLE_MASK = ANGLES - 1;
const QUARTER = ANGLES >> 2;
const COS = new Float64Array(ANGLES);
for (let i = 0; i < ANGLES; i++) COS[i] = Math.cos((2 * Math.PI * (i + 0.5)) / ANGLES);

/** One standard normal sample at (seed, c, y, x). */
export function noiseAt(seed: number, c: number, y: number, x: number): number {
  const kc = fmix32(fmix32((seed >>> 0) ^ 0x9e3779b9) ^ Math.imul(c + 1, 0x85ebca6b));
  const key = fmix32(kc ^ Math.imul(y | 0, 0xc2b2ae35));
  const h1 = fmix32(key ^ Math.imul((x | 0) >> 1, 0x27d4eb2f));
  const h2 = fmix32(h1 ^ 0x165667b1);
  const r = Math.sqrt(-2 * Math.log((h1 + 0.5) * INV_2_32));
  const a = h2 >>> (32 - ANGLE_BITS);
  // sin t = cos(t - pi/2)
  return (x & 1) === 0 ? r * COS[a] : r * COS[(a - QUARTER) & ANGLE_MASK];
}

/**
 * Planar float32 noise [channels, h, w] for the window whose top-left is image pixel (x0, y0).
 * Writes into `out` when given (every element is overwritten).
 */
export function noiseWindow(seed: number, channels: number, x0: number, y0: number, w: number, h: number, out?: Float32Array): Float32Array {
  if (out && out.length !== channels * w * h) throw new RangeError(`noiseWindow: out has ${out.length} floats, need ${channels * w * h}`);
  out ??= new Float32Array(channels * w * h);
  const s = seed >>> 0;
  const xa = x0 | 0;
  const xb = xa + w; // exclusive
  for (let c = 0; c < channels; c++) {
    const kc = fmix32(fmix32(s ^ 0x9e3779b9) ^ Math.imul(c + 1, 0x85ebca6b));
    for (let y = 0; y < h; y++) {
      const key = fmix32(kc ^ Math.imul((y0 + y) | 0, 0xc2b2ae35));
      const o = (c * h + y) * w - xa;
      for (let k = xa >> 1; 2 * k < xb; k++) {
        const h1 = fmix32(key ^ Math.imul(k, 0x27d4eb2f));
        const h2 = fmix32(h1 ^ 0x165667b1);
        const r = Math.sqrt(-2 * Math.log((h1 + 0.5) * INV_2_32));
        const a = h2 >>> (32 - ANGLE_BITS);
        const xe = 2 * k;
        if (xe >= xa) out[o + xe] = r * COS[a];
        if (xe + 1 < xb) out[o + xe + 1] = r * COS[(a - QUARTER) & ANGLE_MASK];
      }
    }
  }
  return out;
}
