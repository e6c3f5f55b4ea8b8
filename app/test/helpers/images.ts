// Test images made with sharp, and small pixel statistics for assertions.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

/** A fresh temp folder removed when the process exits. */
export function tmpDir(prefix = 'duoscale-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => { try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* gone */ } });
  return d;
}

/** Smooth photo-like RGB content: sums of low-frequency sinusoids, 8-bit interleaved. */
export function photoPixels(w: number, h: number, seed = 1, channels = 3): Uint8Array {
  const out = new Uint8Array(w * h * channels);
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const waves = Array.from({ length: channels * 3 }, () => [rnd() * 0.2 + 0.02, rnd() * 0.2 + 0.02, rnd() * 6.28]);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < channels; c++) {
        let v = 0.5;
        for (let k = 0; k < 3; k++) { const [fx, fy, ph] = waves[c * 3 + k]; v += 0.15 * Math.sin(fx * x + fy * y + ph); }
        out[(y * w + x) * channels + c] = Math.max(0, Math.min(255, Math.round(v * 255)));
      }
    }
  }
  return out;
}

export function rawInput(data: Uint8Array | Uint16Array, w: number, h: number, channels: 1 | 2 | 3 | 4) {
  return sharp(data, { raw: { width: w, height: h, channels } });
}

/** Flat colour image. */
export function flat(w: number, h: number, rgb: [number, number, number], alpha?: number) {
  return sharp({ create: { width: w, height: h, channels: alpha === undefined ? 3 : 4, background: { r: rgb[0], g: rgb[1], b: rgb[2], alpha: alpha ?? 1 } } });
}

export interface Raw { data: Buffer; width: number; height: number; channels: number }

/** Decoded samples as sharp gives them (no colour conversion unless asked). */
export async function readRaw(file: string, opts: { depth16?: boolean; keepIcc?: boolean } = {}): Promise<Raw> {
  let img = sharp(file);
  if (opts.keepIcc) img = img.keepIccProfile();
  if (opts.depth16) img = img.toColourspace('rgb16');
  const r = await img.raw({ depth: opts.depth16 ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  return { data: r.data, width: r.info.width, height: r.info.height, channels: r.info.channels };
}

/** Mean of each channel. */
export function channelMeans(r: Raw): number[] {
  const m = new Array(r.channels).fill(0);
  const n = r.width * r.height;
  for (let i = 0; i < n; i++) for (let c = 0; c < r.channels; c++) m[c] += r.data[i * r.channels + c];
  return m.map((v) => v / n);
}

/** Largest absolute per-sample difference of two equally shaped 8-bit images. */
export function maxAbsDiff(a: Uint8Array | Buffer, b: Uint8Array | Buffer): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); if (d > m) m = d; }
  return m;
}

export function meanAbsDiff(a: Uint8Array | Buffer, b: Uint8Array | Buffer): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}
