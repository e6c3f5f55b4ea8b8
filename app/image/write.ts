// Writing results: output names, band files, encoding with metadata, atomic rename.
//
// The upscaled image never exists in memory as a whole. Finished rows are collected into
// fixed-height band PNGs (fast zlib level 1) in a hidden temp folder next to the output;
// sharp then joins the bands vertically (libvips reads them sequentially), applies the final
// resize/colour conversion/metadata and encodes to a hidden temp file, which is renamed onto
// the final name. Temp names all start with ".duoscale-" and end with ".tmp".

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import type { OutputFormat } from '../api.ts';
import { DuoscaleError } from '../errors.ts';
import type { IccKind } from './color.ts';
import { pngWithExif } from './metadata.ts';

export type ConcreteFormat = Exclude<OutputFormat, 'same'>;

export const EXTENSIONS: Record<ConcreteFormat, string> = { jpeg: '.jpg', png: '.png', webp: '.webp', tiff: '.tif', avif: '.avif' };

/** Largest width/height each encoder accepts. */
export const MAX_DIMENSION: Record<ConcreteFormat, number> = { jpeg: 65535, png: 1 << 30, webp: 16383, tiff: 1 << 30, avif: 16384 };

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
 * Collects finished rows into fixed-height band PNGs. The first band carries the EXIF block
 * (eXIf chunk) that the final encode keeps.
 */
export class BandWriter {
  readonly dir: string;
  readonly width: number;
  readonly channels: number;
  readonly depth16: boolean;
  readonly chunkRows: number;
  readonly exif?: Buffer;
  #buf: Uint8Array | Uint16Array;
  #fill = 0;
  #files: string[] = [];
  #height = 0;

  constructor(opts: { dir: string; width: number; channels: number; depth16: boolean; chunkRows: number; exif?: Buffer }) {
    this.dir = opts.dir;
    this.width = opts.width;
    this.channels = opts.channels;
    this.depth16 = opts.depth16;
    this.chunkRows = Math.max(1, opts.chunkRows);
    this.exif = opts.exif;
    this.#buf = this.#alloc();
  }

  #alloc(): Uint8Array | Uint16Array {
    const n = this.chunkRows * this.width * this.channels;
    return this.depth16 ? new Uint16Array(n) : new Uint8Array(n);
  }

  get height(): number { return this.#height + this.#fill; }
  get files(): string[] { return [...this.#files]; }

  /** Appends `rows` full rows of interleaved samples. */
  async push(samples: Uint8Array | Uint16Array, rows: number): Promise<void> {
    const rowLen = this.width * this.channels;
    let r = 0;
    while (r < rows) {
      const take = Math.min(rows - r, this.chunkRows - this.#fill);
      (this.#buf as Uint8Array).set(samples.subarray(r * rowLen, (r + take) * rowLen) as Uint8Array, this.#fill * rowLen);
      this.#fill += take;
      r += take;
      if (this.#fill === this.chunkRows) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    if (this.#fill === 0) return;
    const rows = this.#fill;
    const data = this.#buf.subarray(0, rows * this.width * this.channels);
    let img = sharp(data, { raw: { width: this.width, height: rows, channels: this.channels as 1 | 2 | 3 | 4 } });
    if (this.depth16) img = img.toColourspace(this.channels >= 3 ? 'rgb16' : 'grey16');
    let png: Buffer = await img.png({ compressionLevel: 1, adaptiveFiltering: false }).toBuffer();
    if (this.#files.length === 0 && this.exif) png = pngWithExif(png, this.exif);
    const file = path.join(this.dir, `band-${String(this.#files.length).padStart(5, '0')}.png`);
    await fs.writeFile(file, png);
    this.#files.push(file);
    this.#height += rows;
    this.#fill = 0;
  }

  /** Writes the last partial band. */
  async finish(): Promise<{ files: string[]; height: number }> {
    await this.#flush();
    return { files: this.files, height: this.#height };
  }

  /** Drops everything written so far (shrink-and-retry starts the image again). */
  async reset(): Promise<void> {
    for (const f of this.#files) await fs.rm(f, { force: true });
    this.#files = [];
    this.#height = 0;
    this.#fill = 0;
  }
}

export interface EncodeRequest {
  bands: string[];
  /** Width/height of the joined bands. */
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

/** Joins the band files and encodes them with metadata to req.tmpPath. */
export async function encodeBands(req: EncodeRequest): Promise<void> {
  // Bands all have the same height except the last; arrayjoin pads that cell, extract trims it.
  let img = req.bands.length === 1
    ? sharp(req.bands[0], { limitInputPixels: false, sequentialRead: true })
    : sharp(req.bands, { join: { across: 1 }, limitInputPixels: false, sequentialRead: true })
      .extract({ left: 0, top: 0, width: req.width, height: req.height });
  if (req.outWidth !== req.width || req.outHeight !== req.height) {
    img = img.resize(req.outWidth, req.outHeight, { fit: 'fill', kernel: 'lanczos3' });
  }
  const lossless16 = req.depth16 && (req.format === 'png' || req.format === 'tiff');
  if (req.hasAlpha && req.format === 'jpeg') img = img.flatten({ background: '#ffffff' });
  if (req.grayscale) img = img.toColourspace(lossless16 ? 'grey16' : 'b-w');
  else if (lossless16) img = img.toColourspace('rgb16');
  if (req.keepMetadata) {
    img = img.keepExif();
    if (req.icc && req.iccFile) {
      if (req.iccKind === 'rgb' && !req.grayscale) img = img.withIccProfile(req.iccFile);
      else if (req.iccKind === 'gray' && req.grayscale) img = img.withIccProfile(req.iccFile);
      else img = img.withIccProfile('srgb');
    }
    if (req.xmp && req.format !== 'avif') img = img.withXmp(req.xmp);
  }
  const q = Math.max(1, Math.min(100, Math.round(req.quality)));
  switch (req.format) {
    case 'jpeg': img = img.jpeg({ quality: q, chromaSubsampling: q >= 90 ? '4:4:4' : '4:2:0' }); break;
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
