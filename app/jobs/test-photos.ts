// Small generated photos for the engine's job/CLI/bench tests (never real data).
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

/** A photo-like picture: smooth gradients, a few edges and fine deterministic texture. */
export function photoPixels(width: number, height: number, seed = 1): Buffer {
  const buf = Buffer.alloc(width * height * 3);
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
  const cx = width * (0.3 + 0.4 * rnd());
  const cy = height * (0.3 + 0.4 * rnd());
  const r = Math.min(width, height) * 0.25;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inDisc = (x - cx) ** 2 + (y - cy) ** 2 < r * r;
      const g = (x / width) * 160 + (y / height) * 60;
      const tex = (rnd() - 0.5) * 24 + Math.sin(x * 0.35) * Math.cos(y * 0.27) * 14;
      buf[i] = clamp(inDisc ? 220 + tex : g + 40 + tex);
      buf[i + 1] = clamp(inDisc ? 90 + tex : 200 - g * 0.5 + tex);
      buf[i + 2] = clamp(inDisc ? 60 + tex : 90 + (y / height) * 120 + tex);
    }
  }
  return buf;
}

const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

/** Writes a photo; the format follows the extension (.jpg .png .webp .tif). */
export async function makePhoto(file: string, width: number, height: number, seed = 1): Promise<string> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(photoPixels(width, height, seed), { raw: { width, height, channels: 3 } });
  const ext = path.extname(file).toLowerCase();
  const out = ext === '.png' ? img.png() : ext === '.webp' ? img.webp({ quality: 90 }) : ext === '.tif' || ext === '.tiff' ? img.tiff() : img.jpeg({ quality: 92 });
  await out.toFile(file);
  return file;
}

/** Broken inputs a batch must survive: each gets its own clear error. */
export async function makeBadInputs(dir: string, opts: { huge?: boolean } = {}): Promise<Record<string, string>> {
  fs.mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {};
  files.zero = path.join(dir, 'zero.jpg');
  fs.writeFileSync(files.zero, '');
  files.text = path.join(dir, 'notes.jpg');
  fs.writeFileSync(files.text, 'this is not a photo, just text saved with a .jpg name\n');
  const good = await sharp(photoPixels(64, 48, 9), { raw: { width: 64, height: 48, channels: 3 } }).jpeg().toBuffer();
  files.truncated = path.join(dir, 'truncated.jpg');
  fs.writeFileSync(files.truncated, good.subarray(0, Math.floor(good.length / 2)));
  if (opts.huge) {
    files.huge = path.join(dir, 'huge.png');
    await sharp({ create: { width: 9000, height: 8000, channels: 3, background: '#808080' } }).png({ compressionLevel: 1 }).toFile(files.huge);
  }
  return files;
}
