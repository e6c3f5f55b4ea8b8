// Decoding photos with sharp into what the model needs: upright, sRGB, interleaved samples.
//
// The file's content decides its format, not its extension: a PNG named .jpg is read as the
// PNG it is (and 'same' output format means PNG). A file sharp cannot read is refused.

import * as fs from 'node:fs/promises';
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
