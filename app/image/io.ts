// Decoding photos with sharp into what the model needs: upright, sRGB, interleaved samples.
//
// The file's content decides its format, not its extension: a PNG named .jpg is read as the
// PNG it is (and 'same' output format means PNG). A file sharp cannot read is refused.

import { closeSync as fs_closeSync, fstatSync as fs_fstatSync, openSync as fs_openSync, readSync as fs_readSync, rmSync as fs_rmSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { endianness as os_endianness } from 'node:os';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import type { ImageRecord } from '../api.ts';
import { DuoscaleError } from '../errors.ts';
import { iccDescription, iccKind, type IccKind } from './color.ts';
import { readOrientation } from './metadata.ts';

/** Default largest input accepted, in pixels (after this the 4x output passes 1 gigapixel). */
export const DEFAULT_MAX_INPUT_PIXELS = 64_000_000;

export interface ImageInfo {
  path: string;
  /** Format by content (sharp's name: jpeg, png, webp, tiff, heif, gif, ...). */
  format: string;
  /** Upright size (EXIF orientation applied). */
  width: number;
  height: number;
  bytes: number;
  orientation: number;
  channels: number;
  hasAlpha: boolean;
  /** True for 16-bit-per-sample sources (kept as 16 bit for PNG/TIFF output). */
  depth16: boolean;
  grayscale: boolean;
  /** libvips interpretation, e.g. srgb, b-w, cmyk, rgb16, grey16. */
  space: string;
  iccKind: IccKind | null;
  /** Catalog summary (ImageRecord.metadata). */
  metadata: ImageRecord['metadata'];
}

export interface DecodedImage {
  info: ImageInfo;
  /** Interleaved RGB, sRGB, upright; Uint16Array when info.depth16. */
  pixels: Uint8Array | Uint16Array;
  /** Alpha plane (same depth) or null. */
  alpha: Uint8Array | Uint16Array | null;
  icc?: Buffer;
  exif?: Buffer;
  xmp?: string;
}

export interface ProbeResult { info: ImageInfo; icc?: Buffer; exif?: Buffer; xmp?: string }

const FORMAT_HINT = 'Duoscale reads JPEG, PNG, WebP, TIFF, AVIF/HEIF and GIF';

/** Maps a sharp/libvips failure on `file` to a DuoscaleError. */
export function decodeError(e: unknown, file: string): DuoscaleError {
  if (e instanceof DuoscaleError) return e;
  const msg = (e as Error)?.message ?? String(e);
  const first = msg.split('\n')[0];
  if (/unsupported image format/i.test(msg)) {
    return new DuoscaleError('E_NOT_IMAGE', 'not an image Duoscale can read', { file, hint: `Check that it is a photo; ${FORMAT_HINT}`, cause: e });
  }
  if (/premature end|truncat|unexpected end|read error|end of file|not enough data|bogus marker/i.test(msg)) {
    return new DuoscaleError('E_TRUNCATED', `the file is truncated or damaged (${first})`, {
      file, hint: 'Copy the photo again from its source; the file ends before the image data does', cause: e });
  }
  if (/pixel limit/i.test(msg)) {
    return new DuoscaleError('E_TOO_LARGE', 'the image is over the pixel limit', { file, hint: 'Downscale it first or raise the pixel limit', cause: e });
  }
  return new DuoscaleError('E_CORRUPT', `the image could not be decoded (${first})`, {
    file, hint: 'Open and re-save it in an image editor, or copy it again from its source', cause: e });
}

async function statInput(file: string): Promise<number> {
  let st;
  try {
    st = await fs.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DuoscaleError('E_NOT_FOUND', 'the file does not exist', { file, hint: 'Check the path' });
    throw new DuoscaleError('E_NOT_FOUND', `the file cannot be read (${code})`, { file, hint: 'Check that you may read it' });
  }
  if (st.isDirectory()) throw new DuoscaleError('E_NOT_IMAGE', 'this is a folder, not a photo', { file, hint: 'Pass the folder as a batch input instead' });
  if (st.size === 0) throw new DuoscaleError('E_EMPTY', 'the file is empty (0 bytes)', { file, hint: 'Copy the photo again from its source' });
  return st.size;
}

/** Reads the header only: size, format, metadata. Enforces the pixel limit. */
export async function probeImage(file: string, maxPixels = DEFAULT_MAX_INPUT_PIXELS): Promise<ProbeResult> {
  const bytes = await statInput(file);
  let m: Metadata;
  try {
    m = await sharp(file, { failOn: 'error', limitInputPixels: false }).metadata();
  } catch (e) {
    throw decodeError(e, file);
  }
  if (!m.width || !m.height) throw new DuoscaleError('E_CORRUPT', 'the image has no size in its header', { file, hint: 'Re-save it in an image editor' });
  const px = m.width * m.height;
  if (px > maxPixels) {
    throw new DuoscaleError('E_TOO_LARGE',
      `the image is ${m.width}x${m.height} (${(px / 1e6).toFixed(1)} MP), over the limit of ${(maxPixels / 1e6).toFixed(1)} MP`, {
        file, hint: 'Downscale or crop it first, or raise the pixel limit in the settings' });
  }
  const orientation = m.orientation ?? (m.exif ? readOrientation(m.exif) : undefined) ?? 1;
  const swap = orientation >= 5 && orientation <= 8;
  const space = String(m.space ?? 'srgb');
  const depth16 = m.depth === 'ushort' || space === 'rgb16' || space === 'grey16' || (m.bitsPerSample ?? 8) > 8;
  const grayscale = space === 'b-w' || space === 'grey16';
  const hasAlpha = !!m.hasAlpha;
  const xmp = m.xmp ? m.xmp.toString('utf8') : undefined;
  const icc = m.icc;
  const kind = iccKind(icc);
  const info: ImageInfo = {
    path: file,
    format: m.format ?? 'unknown',
    width: swap ? m.height : m.width,
    height: swap ? m.width : m.height,
    bytes,
    orientation,
    channels: m.channels ?? 3,
    hasAlpha,
    depth16,
    grayscale,
    space,
    iccKind: kind,
    metadata: {
      ...(icc ? { icc: iccDescription(icc) ?? `${kind ?? 'unknown'} profile` } : {}),
      exif: !!m.exif,
      xmp: !!xmp,
      orientation,
      space,
      hasAlpha,
    },
  };
  return { info, icc, exif: m.exif, xmp };
}

/**
 * Decodes a photo to upright sRGB samples (8 or 16 bit) plus a separate alpha plane.
 * @throws {DuoscaleError} E_NOT_FOUND, E_EMPTY, E_NOT_IMAGE, E_TRUNCATED, E_CORRUPT, E_TOO_LARGE
 */
export async function decodeImage(file: string, maxPixels = DEFAULT_MAX_INPUT_PIXELS, probed?: ProbeResult): Promise<DecodedImage> {
  const p = probed ?? (await probeImage(file, maxPixels));
  const { info } = p;
  let data: Buffer;
  let out: OutputInfo;
  try {
    // autoOrient applies EXIF orientation; toColourspace converts from the embedded profile
    // (or libvips' default CMYK profile) to sRGB.
    const r = await sharp(file, { failOn: 'error', limitInputPixels: maxPixels, autoOrient: true })
      .toColourspace(info.depth16 ? 'rgb16' : 'srgb')
      .raw({ depth: info.depth16 ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
    data = r.data;
    out = r.info;
  } catch (e) {
    throw decodeError(e, file);
  }
  const n = out.width * out.height;
  const ch = out.channels;
  let all: Uint8Array | Uint16Array;
  if (info.depth16) {
    // A view when the bytes are 2-aligned (usual), else one aligned copy.
    if (data.byteOffset % 2 === 0) {
      all = new Uint16Array(data.buffer, data.byteOffset, n * ch);
    } else {
      const copy = new Uint8Array(data.length);
      copy.set(data);
      all = new Uint16Array(copy.buffer, 0, n * ch);
    }
  } else {
    all = new Uint8Array(data.buffer, data.byteOffset, n * ch);
  }
  let pixels = all;
  let alpha: Uint8Array | Uint16Array | null = null;
  if (ch === 4 || ch === 2) {
    const Ctor = info.depth16 ? Uint16Array : Uint8Array;
    const rgb = new Ctor(n * 3);
    const a = new Ctor(n);
    for (let i = 0; i < n; i++) {
      const s = i * ch;
      if (ch === 4) { rgb[i * 3] = all[s]; rgb[i * 3 + 1] = all[s + 1]; rgb[i * 3 + 2] = all[s + 2]; a[i] = all[s + 3]; } else { rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = all[s]; a[i] = all[s + 1]; }
    }
    pixels = rgb;
    alpha = a;
  } else if (ch !== 3) {
    throw new DuoscaleError('E_CORRUPT', `unexpected ${ch}-channel decode`, { file, hint: 'Re-save the photo as RGB' });
  }
  return { info: { ...info, width: out.width, height: out.height }, pixels, alpha, icc: p.icc, exif: p.exif, xmp: p.xmp };
}

// ---------------------------------------------------------------------------------------------
// Band-wise reading, so the decoded photo never sits in memory whole.
//
// openImageRows decodes the photo once with libvips, sequentially (colour converted to sRGB,
// 8 or 16 bit, NOT rotated), into an uncompressed libvips ".v" file in a temp folder: a
// 64-byte header, then the samples row-major and interleaved in the machine's byte order. Rows
// of the upright image are then read from that file on demand. EXIF orientation is applied
// here, by index mapping, not by libvips: its rotate needs the whole image in memory.
//   upright (x, y) of W' x H'  ->  stored (sx, sy) of Ws x Hs
//   1: (x, y)   2: (Ws-1-x, y)   3: (Ws-1-x, Hs-1-y)   4: (x, Hs-1-y)
//   5: (y, x)   6: (y, Hs-1-x)   7: (Ws-1-y, Hs-1-x)   8: (Ws-1-y, x)
// For 5-8 an upright row is a stored column: a band is read as one short read per stored row.
// Memory: libvips' decode strips while writing the file, then one band of rows at a time.
// Disk: W x H x channels x (1 or 2) bytes in the temp folder for the duration of the job.

const VIPS_HEADER = 64;
const VIPS_MAGIC_LE = 0xb6a6f208;
const VIPS_MAGIC_BE = 0x08f2a6b6;

/** Upright sRGB rows of one photo, read band by band from a decoded temp file. */
export class ImageRows {
  readonly info: ImageInfo;
  readonly icc?: Buffer;
  readonly exif?: Buffer;
  readonly xmp?: string;
  /** Upright size. */
  readonly width: number;
  readonly height: number;
  readonly depth16: boolean;
  readonly hasAlpha: boolean;
  readonly file: string;
  readonly #fd: number;
  readonly #bands: number;
  readonly #bps: number;
  readonly #sw: number;
  readonly #sh: number;
  readonly #orientation: number;
  #closed = false;

  /** @internal use openImageRows */
  constructor(p: ProbeResult, file: string, fd: number, header: { sw: number; sh: number; bands: number; depth16: boolean }, orientation: number) {
    this.info = p.info;
    this.icc = p.icc;
    this.exif = p.exif;
    this.xmp = p.xmp;
    this.file = file;
    this.#fd = fd;
    this.#sw = header.sw;
    this.#sh = header.sh;
    this.#bands = header.bands;
    this.#bps = header.depth16 ? 2 : 1;
    this.#orientation = orientation;
    const swap = orientation >= 5;
    this.width = swap ? header.sh : header.sw;
    this.height = swap ? header.sw : header.sh;
    this.depth16 = header.depth16;
    this.hasAlpha = header.bands === 2 || header.bands === 4;
  }

  /** Stored samples of rows [y0, y1) of the upright image, interleaved, all bands. */
  #upright(y0: number, y1: number): Uint8Array | Uint16Array {
    const n = y1 - y0;
    const b = this.#bands;
    const bps = this.#bps;
    const W = this.width;
    const o = this.#orientation;
    const buf = Buffer.alloc(n * W * b * bps);
    const rowBytes = this.#sw * b * bps;
    if (o <= 4) {
      // Upright row y is stored row y (1, 2) or Hs-1-y (3, 4); mirrored in x for 2, 3.
      const flipY = o === 3 || o === 4;
      if (!flipY) this.#read(buf, 0, n * rowBytes, VIPS_HEADER + y0 * rowBytes);
      else for (let i = 0; i < n; i++) this.#read(buf, i * rowBytes, rowBytes, VIPS_HEADER + (this.#sh - 1 - (y0 + i)) * rowBytes);
      const out = this.#typed(buf);
      if (o === 2 || o === 3) {
        for (let i = 0; i < n; i++) {
          const base = i * W * b;
          for (let x = 0; x < W >> 1; x++) {
            const l = base + x * b;
            const r = base + (W - 1 - x) * b;
            for (let c = 0; c < b; c++) { const t = out[l + c]; out[l + c] = out[r + c]; out[r + c] = t; }
          }
        }
      }
      return out;
    }
    // 5-8: upright rows [y0, y1) are stored columns [y0, y1) (5, 6) or [Ws-y1, Ws-y0) (7, 8).
    // Upright x runs over stored rows: sy = x (5, 8) or Hs-1-x (6, 7).
    const colsFlipped = o === 7 || o === 8;
    const sx0 = colsFlipped ? this.#sw - y1 : y0;
    const seg = Buffer.alloc(n * b * bps);
    const dst = this.#typed(buf);
    const segT = this.#typed(seg);
    const rowsFlipped = o === 6 || o === 7;
    for (let sy = 0; sy < this.#sh; sy++) {
      this.#read(seg, 0, seg.length, VIPS_HEADER + sy * rowBytes + sx0 * b * bps);
      const x = rowsFlipped ? this.#sh - 1 - sy : sy;
      for (let j = 0; j < n; j++) {
        // Stored column sx0 + j is upright row y0 + j (5, 6), or y1 - 1 - j (7, 8).
        const i = colsFlipped ? n - 1 - j : j;
        const d = (i * W + x) * b;
        const s = j * b;
        for (let c = 0; c < b; c++) dst[d + c] = segT[s + c];
      }
    }
    return dst;
  }

  #typed(buf: Buffer): Uint8Array | Uint16Array {
    return this.#bps === 2 ? new Uint16Array(buf.buffer, buf.byteOffset, buf.length / 2) : new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  }

  #read(buf: Buffer, offset: number, length: number, position: number): void {
    if (this.#closed) throw new Error('ImageRows: read after close');
    let done = 0;
    while (done < length) {
      const got = fs_readSync(this.#fd, buf, offset + done, length - done, position + done);
      if (got === 0) throw new DuoscaleError('E_CORRUPT', 'the decoded temp copy of the photo ended early', { file: this.info.path, hint: 'Check free disk space in the output folder and try again' });
      done += got;
    }
  }

  /**
   * Upright rows [y0, y1): RGB interleaved (grey photos come as R = G = B) and the alpha plane
   * (or null). Fresh arrays on every call.
   */
  rows(y0: number, y1: number): { rgb: Uint8Array | Uint16Array; alpha: Uint8Array | Uint16Array | null } {
    if (!(Number.isInteger(y0) && Number.isInteger(y1) && y0 >= 0 && y1 <= this.height && y0 < y1)) {
      throw new RangeError(`ImageRows.rows(${y0}, ${y1}) outside 0..${this.height}`);
    }
    const all = this.#upright(y0, y1);
    const b = this.#bands;
    if (b === 3) return { rgb: all, alpha: null };
    const n = (y1 - y0) * this.width;
    const Ctor = this.depth16 ? Uint16Array : Uint8Array;
    const rgb = new Ctor(n * 3);
    const alpha = this.hasAlpha ? new Ctor(n) : null;
    for (let i = 0; i < n; i++) {
      const s = i * b;
      if (b >= 3) { rgb[i * 3] = all[s]; rgb[i * 3 + 1] = all[s + 1]; rgb[i * 3 + 2] = all[s + 2]; } else { rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = all[s]; }
      if (alpha) alpha[i] = all[s + b - 1];
    }
    return { rgb, alpha };
  }

  /** Rows [y0, y1) of the alpha plane only (throws when there is none). */
  alphaRows(y0: number, y1: number): Uint8Array | Uint16Array {
    const a = this.rows(y0, y1).alpha;
    if (!a) throw new Error('ImageRows: the photo has no alpha');
    return a;
  }

  /** Closes and deletes the temp file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try { fs_closeSync(this.#fd); } catch { /* closed */ }
    try { fs_rmSync(this.file, { force: true }); } catch { /* gone */ }
  }
}

/**
 * Decodes a photo into `tmpFile` (libvips .v, sequential) and opens it for band reads.
 * The caller must close() it (which deletes the file).
 * @throws {DuoscaleError} E_NOT_FOUND, E_EMPTY, E_NOT_IMAGE, E_TRUNCATED, E_CORRUPT, E_TOO_LARGE, E_OUTPUT_UNWRITABLE
 */
export async function openImageRows(file: string, tmpFile: string, maxPixels = DEFAULT_MAX_INPUT_PIXELS, probed?: ProbeResult): Promise<ImageRows> {
  const p = probed ?? (await probeImage(file, maxPixels));
  const { info } = p;
  try {
    await sharp(file, { failOn: 'error', limitInputPixels: maxPixels, autoOrient: false, sequentialRead: true })
      .toColourspace(info.depth16 ? 'rgb16' : 'srgb')
      .toFile(tmpFile);
  } catch (e) {
    await fs.rm(tmpFile, { force: true }).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EACCES' || /No space|Permission denied|unable to (open|write)/i.test((e as Error).message ?? '')) {
      throw new DuoscaleError('E_OUTPUT_UNWRITABLE', `could not write the decoded temp copy (${(e as Error).message.split('\n')[0]})`, {
        file: tmpFile, hint: 'Check free disk space and permissions in the output folder', cause: e });
    }
    throw decodeError(e, file);
  }
  const fd = fs_openSync(tmpFile, 'r');
  try {
    const h = Buffer.alloc(VIPS_HEADER);
    if (fs_readSync(fd, h, 0, VIPS_HEADER, 0) !== VIPS_HEADER) throw new Error('short header');
    const magic = h.readUInt32BE(0);
    const le = magic === VIPS_MAGIC_LE;
    if (!le && magic !== VIPS_MAGIC_BE) throw new Error(`not a libvips file (magic ${magic.toString(16)})`);
    const int = (o: number) => (le ? h.readInt32LE(o) : h.readInt32BE(o));
    const sw = int(4), sh = int(8), bands = int(12), fmt = int(20), coding = int(24);
    // BandFmt 0 = uchar, 2 = ushort; coding 0 = none.
    if (coding !== 0 || (fmt !== 0 && fmt !== 2) || bands < 1 || bands > 4) throw new Error(`unexpected layout: ${bands} bands, format ${fmt}, coding ${coding}`);
    const depth16 = fmt === 2;
    if (depth16 && !le !== (os_endianness() === 'BE')) throw new Error('16-bit samples in the other byte order');
    const size = fs_fstatSync(fd).size;
    if (size < VIPS_HEADER + sw * sh * bands * (depth16 ? 2 : 1)) throw new Error(`file too short for ${sw}x${sh}x${bands}`);
    const orientation = info.orientation >= 1 && info.orientation <= 8 ? info.orientation : 1;
    const rows = new ImageRows(p, tmpFile, fd, { sw, sh, bands, depth16 }, orientation);
    // The probe's size is upright already; the file's must agree once oriented.
    if (rows.width !== info.width || rows.height !== info.height) throw new Error(`decoded ${rows.width}x${rows.height}, header says ${info.width}x${info.height}`);
    return rows;
  } catch (e) {
    try { fs_closeSync(fd); } catch { /* closed */ }
    await fs.rm(tmpFile, { force: true }).catch(() => undefined);
    throw new DuoscaleError('E_CORRUPT', `the decoded temp copy is unusable (${(e as Error).message})`, {
      file, hint: 'Re-save the photo as PNG or JPEG and try again', cause: e });
  }
}
