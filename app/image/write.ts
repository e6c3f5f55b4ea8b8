// Writing results: output names, band files, encoding with metadata, atomic rename.
//
// The upscaled image never exists in memory as a whole. Finished rows are streamed into one
// intermediate PNG (our own encoder, zlib level 1) in a hidden temp folder next to the output;
// sharp then reads it sequentially, applies the final resize/colour conversion/metadata and
// encodes to a hidden temp file, which is renamed onto the final name. (A libvips arrayjoin
// of band files was tried first: it keeps every band decoded, so memory grew with the image.)
// Temp names all start with ".duoscale-" and end with ".tmp".

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fsSync from 'node:fs';
import * as fs from 'node:fs/promises';
import * as zlib from 'node:zlib';
import * as path from 'node:path';
import sharp from 'sharp';
import type { OutputFormat } from '../api.ts';
import { DuoscaleError } from '../errors.ts';
import type { IccKind } from './color.ts';
import { pngChunk } from './metadata.ts';

export type ConcreteFormat = Exclude<OutputFormat, 'same'>;

export const EXTENSIONS: Record<ConcreteFormat, string> = { jpeg: '.jpg', png: '.png', webp: '.webp', tiff: '.tif', avif: '.avif' };

/** Largest width/height each encoder accepts (measured with sharp 0.35.5 / libvips 8.18.7). */
export const MAX_DIMENSION: Record<ConcreteFormat, number> = { jpeg: 65500, png: 1 << 30, webp: 16383, tiff: 1 << 30, avif: 16384 };

/** Temp files/folders made by Duoscale in output folders (safe to delete when no job runs). */
export const TEMP_NAME_RE = /^\.duoscale-.*\.tmp$/;

/** 'same' -> the format of the input's content; formats sharp cannot write map to PNG. */
export function resolveFormat(format: OutputFormat, inputFormat: string): ConcreteFormat {
  if (format !== 'same') return format;
  switch (inputFormat) {
    case 'jpeg': case 'jpg': return 'jpeg';
    case 'webp': return 'webp';
    case 'tiff': return 'tiff';
    case 'heif': case 'avif': return 'avif';
    default: return 'png';
  }
}

export interface NameTokens {
  /** Input file name without extension. */
  name: string;
  /** Input extension without the dot. */
  ext: string;
  /** "4", "2", "1", or "w1920" for a target width. */
  scale: string;
  model: string;
  seed: number;
  /** YYYYMMDD (local time). */
  date: string;
}

const TOKEN_RE = /\{(name|ext|scale|model|seed|date)\}/g;

/**
 * Expands a naming template ("{name}_x{scale}_{model}") into a file name (no extension).
 * Path separators and characters Windows forbids are replaced by "_". When `uniqueSeed` is
 * set and the template has no {seed}, "_s{seed}" is appended so variations get distinct names.
 */
export function expandName(template: string, t: NameTokens, uniqueSeed = false): string {
  let tpl = template.trim() || '{name}_x{scale}_{model}';
  if (uniqueSeed && !tpl.includes('{seed}')) tpl += '_s{seed}';
  const out = tpl.replace(TOKEN_RE, (_, k: keyof NameTokens) => String(t[k]));
  const safe = out.replace(/[\/\\:*?"<>|\u0000-\u001f]/g, '_').replace(/^\.+/, '_');
  return safe || t.name;
}

export function dateToken(d = new Date()): string {
  return `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;
}

/** Creates the output folder (recursively) and checks it is writable. */
export async function ensureWritableDir(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true });
    const probe = path.join(dir, `.duoscale-probe-${randomBytes(4).toString('hex')}.tmp`);
    await fs.writeFile(probe, '');
    await fs.rm(probe, { force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new DuoscaleError('E_OUTPUT_UNWRITABLE', `cannot write to the output folder (${code})`, {
      file: dir, hint: 'Choose another output folder (-o) or fix its permissions', cause: e });
  }
}

/** Same file, by real path when both exist, else by resolved path. */
export async function samePath(a: string, b: string): Promise<boolean> {
  const ra = await fs.realpath(a).catch(() => path.resolve(a));
  const rb = await fs.realpath(b).catch(() => path.resolve(b));
  return process.platform === 'win32' || process.platform === 'darwin' ? ra.toLowerCase() === rb.toLowerCase() : ra === rb;
}

/**
 * Streams finished rows into one PNG (our own encoder: Sub filter, zlib level 1) so the
 * upscaled image never sits in memory whole. libvips then reads that PNG sequentially for the
 * final encode. The original EXIF block goes in as an eXIf chunk, which libvips keeps.
 */
export class PngStreamWriter {
  readonly file: string;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
  readonly depth16: boolean;
  readonly exif?: Buffer;
  #fd = -1;
  #deflate: zlib.Deflate | null = null;
  #rows = 0;
  #error: Error | null = null;
  /** Filtered rows of the last push, reused once zlib has consumed them. */
  #buf: Buffer | null = null;

  constructor(opts: { file: string; width: number; height: number; channels: 1 | 2 | 3 | 4; depth16: boolean; exif?: Buffer }) {
    this.file = opts.file;
    this.width = opts.width;
    this.height = opts.height;
    this.channels = opts.channels;
    this.depth16 = opts.depth16;
    this.exif = opts.exif;
  }

  get rowsWritten(): number { return this.#rows; }

  #open(): void {
    this.#fd = fsSync.openSync(this.file, 'w');
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(this.width, 0);
    ihdr.writeUInt32BE(this.height, 4);
    ihdr[8] = this.depth16 ? 16 : 8;
    ihdr[9] = [0, 0, 4, 2, 6][this.channels]; // grey, grey+alpha, RGB, RGBA
    fsSync.writeSync(this.#fd, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    fsSync.writeSync(this.#fd, pngChunk('IHDR', ihdr));
    if (this.exif) fsSync.writeSync(this.#fd, pngChunk('eXIf', this.exif));
    const d = zlib.createDeflate({ level: 1 });
    d.on('data', (chunk: Buffer) => {
      try { fsSync.writeSync(this.#fd, pngChunk('IDAT', chunk)); } catch (e) { this.#error = e as Error; }
    });
    d.on('error', (e) => { this.#error = e; });
    this.#deflate = d;
  }

  /** Appends `rows` full rows of interleaved samples (little-endian Uint16 for 16 bit). */
  async push(samples: Uint8Array | Uint16Array, rows: number): Promise<void> {
    if (this.#fd < 0) this.#open();
    if (this.#rows + rows > this.height) throw new Error(`PNG stream: ${this.#rows + rows} rows > height ${this.height}`);
    const bpp = this.channels * (this.depth16 ? 2 : 1);
    const stride = this.width * bpp;
    const need = rows * (stride + 1);
    // One buffer for every push (bands are the same size but the last): no garbage per band.
    if (!this.#buf || this.#buf.length < need) this.#buf = Buffer.alloc(need);
    const out = this.#buf.subarray(0, need);
    const row16 = this.depth16 ? Buffer.alloc(stride) : null;
    for (let r = 0; r < rows; r++) {
      const o = r * (stride + 1);
      out[o] = 1; // filter: Sub
      let row: Buffer;
      if (row16) {
        row = row16;
        const base = r * this.width * this.channels;
        for (let i = 0; i < this.width * this.channels; i++) row.writeUInt16BE(samples[base + i], i * 2);
      } else {
        row = Buffer.from(samples.buffer, samples.byteOffset + r * stride, stride);
      }
      for (let i = 0; i < bpp; i++) out[o + 1 + i] = row[i];
      for (let i = bpp; i < stride; i++) out[o + 1 + i] = (row[i] - row[i - bpp]) & 0xff;
    }
    this.#rows += rows;
    const d = this.#deflate!;
    // The write callback runs once zlib has consumed the chunk, so the buffer is free again.
    await new Promise<void>((resolve, reject) => d.write(out, (e) => (e ? reject(e) : resolve())));
    if (this.#error) throw this.#error;
  }

  /** Flushes and closes the PNG; every row must have been pushed. */
  async finish(): Promise<void> {
    if (this.#rows !== this.height) throw new Error(`PNG stream: got ${this.#rows} of ${this.height} rows`);
    const d = this.#deflate!;
    const ended = once(d, 'end');
    d.end();
    await ended;
    if (this.#error) throw this.#error;
    fsSync.writeSync(this.#fd, pngChunk('IEND', Buffer.alloc(0)));
    fsSync.closeSync(this.#fd);
    this.#fd = -1;
    this.#deflate = null;
  }

  /** Drops everything written so far (shrink-and-retry starts the image again). */
  async reset(): Promise<void> {
    this.abort();
    this.#rows = 0;
  }

  /** Closes without finishing (the caller removes the file). */
  abort(): void {
    if (this.#deflate) { this.#deflate.removeAllListeners('data'); this.#deflate.destroy(); this.#deflate = null; }
    if (this.#fd >= 0) { try { fsSync.closeSync(this.#fd); } catch { /* closed */ } this.#fd = -1; }
  }
}

export interface EncodeRequest {
  /** The streamed intermediate PNG (PngStreamWriter). */
  source: string;
  /** Its width/height. */
  width: number;
  height: number;
  /** Final size (a resize happens when it differs). */
  outWidth: number;
  outHeight: number;
  format: ConcreteFormat;
  quality: number;
  depth16: boolean;
  grayscale: boolean;
  hasAlpha: boolean;
  keepMetadata: boolean;
  /** Original ICC profile, written to iccFile for sharp. */
  icc?: Buffer;
  iccKind: IccKind | null;
  iccFile?: string;
  xmp?: string;
  /** Where to encode (a temp name in the output folder). */
  tmpPath: string;
}

/** JPEG's optimised Huffman coding buffers the whole image; above this many pixels it is off. */
export const JPEG_OPTIMISE_MAX_PIXELS = 16_000_000;

/**
 * Encodes the intermediate PNG with metadata to req.tmpPath. libvips reads it sequentially, so
 * memory stays flat for JPEG/PNG/TIFF; WebP and AVIF encoders hold the whole image (format limit).
 */
export async function encodeOutput(req: EncodeRequest): Promise<void> {
  let img = sharp(req.source, { limitInputPixels: false, sequentialRead: true });
  if (req.outWidth !== req.width || req.outHeight !== req.height) {
    img = img.resize(req.outWidth, req.outHeight, { fit: 'fill', kernel: 'lanczos3' });
  }
  const lossless16 = req.depth16 && (req.format === 'png' || req.format === 'tiff');
  if (req.hasAlpha && req.format === 'jpeg') img = img.flatten({ background: '#ffffff' });
  // A grey source PNG stays grey; 16-bit sources stay 16 bit only where the format can hold it.
  if (lossless16) img = img.toColourspace(req.grayscale ? 'grey16' : 'rgb16');
  else if (req.depth16 || req.grayscale) img = img.toColourspace(req.grayscale ? 'b-w' : 'srgb');
  if (req.keepMetadata) {
    img = img.keepExif();
    if (req.icc && req.iccFile) {
      if (req.iccKind === 'rgb' && !req.grayscale) img = img.withIccProfile(req.iccFile);
      else if (!req.grayscale) img = img.withIccProfile('srgb');
    }
    if (req.xmp && req.format !== 'avif') img = img.withXmp(req.xmp);
  }
  const q = Math.max(1, Math.min(100, Math.round(req.quality)));
  switch (req.format) {
    case 'jpeg': img = img.jpeg({ quality: q, chromaSubsampling: q >= 90 ? '4:4:4' : '4:2:0', optimiseCoding: req.outWidth * req.outHeight <= JPEG_OPTIMISE_MAX_PIXELS }); break;
    case 'png': img = img.png({ compressionLevel: 6 }); break;
    case 'webp': img = img.webp({ quality: q }); break;
    case 'tiff': img = img.tiff({ compression: 'deflate', predictor: 'horizontal' }); break;
    case 'avif': img = img.avif({ quality: q }); break;
  }
  await img.toFile(req.tmpPath);
}

/** Hidden temp name next to `finalPath`. */
export function tempPathFor(finalPath: string): string {
  return path.join(path.dirname(finalPath), `.duoscale-${randomBytes(6).toString('hex')}-${path.basename(finalPath)}.tmp`);
}

/** Renames the finished temp file onto its final name (atomic on one file system). */
export async function commitFile(tmpPath: string, finalPath: string): Promise<void> {
  try {
    await fs.rename(tmpPath, finalPath);
  } catch (e) {
    await fs.rm(tmpPath, { force: true });
    throw new DuoscaleError('E_OUTPUT_UNWRITABLE', `could not save the result (${(e as NodeJS.ErrnoException).code})`, {
      file: finalPath, hint: 'Check the output folder\'s permissions and free space', cause: e });
  }
}
