// Small synthetic photos for the e2e tests (no data set files): a sky gradient, a sun,
// hills and some texture, so the model has edges and detail to work on.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

export async function makePhoto(file: string, opts: { width?: number; height?: number; hue?: number } = {}): Promise<string> {
  const w = opts.width ?? 96;
  const h = opts.height ?? 64;
  const hue = opts.hue ?? 30;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="hsl(${hue},60%,72%)"/><stop offset="1" stop-color="hsl(${hue + 25},45%,30%)"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/>
    <circle cx="${w * 0.72}" cy="${h * 0.3}" r="${h * 0.13}" fill="#fff3c4"/>
    <path d="M0 ${h * 0.78} L${w * 0.28} ${h * 0.48} L${w * 0.52} ${h * 0.72} L${w * 0.78} ${h * 0.5} L${w} ${h * 0.7} L${w} ${h} L0 ${h}Z" fill="hsl(${hue + 90},30%,20%)"/>
    ${Array.from({ length: 12 }, (_, i) => `<rect x="${(i * 7.3) % w}" y="${h * 0.82 + (i % 3) * 3}" width="2" height="5" fill="#e9e2c9"/>`).join('')}
  </svg>`;
  mkdirSync(path.dirname(file), { recursive: true });
  await sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toFile(file);
  return file;
}

export async function makeFolder(dir: string, n: number, opts: { width?: number; height?: number } = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await makePhoto(path.join(dir, `photo-${String(i + 1).padStart(2, '0')}.jpg`), { ...opts, hue: 15 + i * 37 }));
  return out;
}

/** A file named like a photo that is not one: the first bytes of a ZIP archive. */
export function makeBroken(file: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.concat([Buffer.from('PK\u0003\u0004'), Buffer.alloc(200, 7)]));
  return file;
}
