// EXIF/XMP handling that sharp does not offer: resetting orientation inside the original
// EXIF block and carrying that block into our output.
//
// The output is encoded by sharp from an intermediate PNG we stream (image/write.ts). The
// original EXIF, with Orientation set to 1 (pixels are already upright), is put into that PNG
// as an eXIf chunk; libvips reads it there and writes it into JPEG/PNG/WebP/AVIF outputs with its
// dimension tags updated. (libvips does not write EXIF into TIFF; ICC and XMP still go there.)

import { crc32 } from 'node:zlib';

const EXIF_PREFIX = Buffer.from('Exif\0\0', 'latin1');

/** The TIFF-structured body of an EXIF block (strips the "Exif\0\0" APP1 prefix if present). */
export function exifBody(exif: Buffer): Buffer {
  return exif.subarray(0, 6).equals(EXIF_PREFIX) ? exif.subarray(6) : exif;
}

/** Orientation (tag 0x0112 in IFD0) of an EXIF block, or undefined. */
export function readOrientation(exif: Buffer): number | undefined {
  const at = findOrientation(exifBody(exif));
  if (!at) return undefined;
  return at.le ? at.body.readUInt16LE(at.off) : at.body.readUInt16BE(at.off);
}

function findOrientation(body: Buffer): { body: Buffer; off: number; le: boolean } | null {
  if (body.length < 8) return null;
  const order = body.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return null;
  const le = order === 'II';
  const u16 = (o: number) => (le ? body.readUInt16LE(o) : body.readUInt16BE(o));
  const u32 = (o: number) => (le ? body.readUInt32LE(o) : body.readUInt32BE(o));
  const ifd = u32(4);
  if (ifd + 2 > body.length) return null;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > body.length) return null;
    if (u16(e) === 0x0112 && u16(e + 2) === 3) return { body, off: e + 8, le };
  }
  return null;
}

/** A copy of the EXIF body (no prefix) with Orientation set to 1, when the tag exists. */
export function exifWithOrientation1(exif: Buffer): Buffer {
  const body = Buffer.from(exifBody(exif));
  const at = findOrientation(body);
  if (at) {
    if (at.le) body.writeUInt16LE(1, at.off); else body.writeUInt16BE(1, at.off);
  }
  return body;
}

/** XMP text with any tiff:Orientation reset to 1. */
export function xmpWithOrientation1(xmp: string): string {
  return xmp
    .replace(/tiff:Orientation="\d+"/g, 'tiff:Orientation="1"')
    .replace(/<tiff:Orientation>\s*\d+\s*<\/tiff:Orientation>/g, '<tiff:Orientation>1</tiff:Orientation>');
}

/** One PNG chunk: length, type, data, CRC-32 over type + data. */
export function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/** Inserts an eXIf chunk (TIFF-structured body) right after IHDR of a PNG. */
export function pngWithExif(png: Buffer, body: Buffer): Buffer {
  const sig = png.subarray(0, 8);
  if (png.readUInt32BE(8) !== 13 || png.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG with IHDR first');
  const afterIhdr = 8 + 8 + 13 + 4;
  return Buffer.concat([sig, png.subarray(8, afterIhdr), pngChunk('eXIf', body), png.subarray(afterIhdr)]);
}
