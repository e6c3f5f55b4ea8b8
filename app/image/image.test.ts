import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { tmpDir } from '../test/helpers/images.ts';
import { iccDescription, iccKind } from './color.ts';
import { decodeImage, openImageRows } from './io.ts';
import { exifWithOrientation1, pngChunk, readOrientation, xmpWithOrientation1 } from './metadata.ts';
import { boxReduce, PlaneUpscaler } from './resample.ts';
import { expandName, PngStreamWriter, resolveFormat, TEMP_NAME_RE, tempPathFor } from './write.ts';

describe('EXIF orientation', () => {
  it('reads and resets Orientation in little- and big-endian EXIF', async () => {
    const img = sharp({ create: { width: 4, height: 2, channels: 3, background: '#123456' } });
    const exif = (await img.withExif({ IFD0: { Make: 'Acme' } }).withMetadata({ orientation: 8 }).jpeg().toBuffer().then((b) => sharp(b).metadata())).exif!;
    assert.equal(readOrientation(exif), 8);
    const fixed = exifWithOrientation1(exif);
    assert.equal(readOrientation(fixed), 1);
    assert.ok(fixed.includes('Acme'));
    assert.equal(readOrientation(exif), 8, 'input buffer untouched');
    // Hand-made big-endian block: MM, IFD0 with one SHORT Orientation = 6.
    const be = Buffer.from([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(readOrientation(be), 6);
    assert.equal(readOrientation(exifWithOrientation1(be)), 1);
    assert.equal(readOrientation(Buffer.from('garbage')), undefined);
  });
  it('resets tiff:Orientation in XMP, attribute and element forms', () => {
    assert.equal(xmpWithOrientation1('<a tiff:Orientation="6"/><tiff:Orientation>8</tiff:Orientation>'), '<a tiff:Orientation="1"/><tiff:Orientation>1</tiff:Orientation>');
  });
});

describe('ICC helpers', () => {
  it('classifies and describes profiles sharp embeds', async () => {
    const m = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#808080' } }).withIccProfile('p3').png().toBuffer().then((b) => sharp(b).metadata());
    assert.equal(iccKind(m.icc), 'rgb');
    assert.match(iccDescription(m.icc) ?? '', /P3/);
    assert.equal(iccKind(undefined), null);
    assert.equal(iccKind(Buffer.alloc(10)), null);
  });
});

describe('resampling', () => {
  it('box reduce is the exact mean of k x k blocks', () => {
    const src = new Uint8Array([0, 2, 4, 6, 8, 10, 12, 14].flatMap((v) => [v, v + 1]));
    // width 4, rows 2, 2 channels
    const out = boxReduce(src, 4, 2, 2, 2);
    assert.deepEqual([...out], [5, 6, 9, 10]);
    const u16 = boxReduce(new Uint16Array([65535, 65535, 65534, 65534]), 2, 2, 1, 2);
    assert.ok(u16 instanceof Uint16Array && u16[0] === 65535);
  });
  it('centre-aligned bicubic: 1x is a copy, a constant stays constant, a ramp stays centred', () => {
    const w = 8, h = 4;
    const ramp = new Uint8Array(w * h).map((_, i) => (i % w) * 30);
    assert.deepEqual([...new PlaneUpscaler(ramp, w, h, 1).rows(1, 3)], [...ramp.subarray(w, 3 * w)]);
    const c = new PlaneUpscaler(new Uint8Array(w * h).fill(77), w, h, 4).rows(0, 16);
    assert.ok(c.every((v) => v === 77));
    const up = new PlaneUpscaler(ramp, w, h, 4).rows(5, 6);
    // Output pixel X samples input x = (X + 0.5)/4 - 0.5; on a linear ramp (30/px) that is exact inside.
    for (let X = 8; X < 24; X++) assert.ok(Math.abs(up[X] - 30 * ((X + 0.5) / 4 - 0.5)) <= 0.5, `X=${X}: ${up[X]}`);
  });
  it('bicubic from a row reader equals the whole-plane result and reads only the rows a band needs', () => {
    const w = 11, h = 9, f = 4;
    const plane = new Uint16Array(w * h).map((_, i) => (i * 40503) % 65536);
    const whole = new PlaneUpscaler(plane, w, h, f);
    let widest = 0;
    const banded = new PlaneUpscaler((y0, y1) => { widest = Math.max(widest, y1 - y0); return plane.slice(y0 * w, y1 * w); }, w, h, f);
    for (const [r0, r1] of [[0, 4], [4, 9], [9, 20], [20, 36]]) assert.deepEqual([...banded.rows(r0, r1)], [...whole.rows(r0, r1)], `rows ${r0}-${r1}`);
    assert.ok(widest <= 16 / f + 4, `a band of up to 16 output rows needs at most 4 input rows + 4 taps, read ${widest} (the plane has ${h})`);
  });
});

describe('names and temp files', () => {
  it('expands tokens and keeps names inside the folder', () => {
    const t = { name: 'IMG_1', ext: 'jpg', scale: '4', model: 'm', seed: 3, date: '20260101' };
    assert.equal(expandName('{name}_x{scale}_{model}', t), 'IMG_1_x4_m');
    assert.equal(expandName('../{name}/{seed}', t), '__IMG_1_3');
    assert.equal(expandName('', t), 'IMG_1_x4_m');
    assert.equal(expandName('{name}', t, true), 'IMG_1_s3');
    assert.equal(expandName('{unknown}', t), '{unknown}');
  });
  it('"same" follows the content format', () => {
    assert.equal(resolveFormat('same', 'jpeg'), 'jpeg');
    assert.equal(resolveFormat('same', 'heif'), 'avif');
    assert.equal(resolveFormat('same', 'gif'), 'png');
    assert.equal(resolveFormat('webp', 'png'), 'webp');
  });
  it('temp names are hidden, in the same folder, and recognisable', () => {
    const t = tempPathFor('/out/a b.jpg');
    assert.equal(path.dirname(t), '/out');
    assert.match(path.basename(t), TEMP_NAME_RE);
  });
});

describe('PngStreamWriter', () => {
  it('writes PNGs libvips decodes to the same samples (8/16 bit, grey, RGB, RGBA) with EXIF', async () => {
    const dir = tmpDir();
    const exif = exifWithOrientation1((await sharp({ create: { width: 2, height: 2, channels: 3, background: '#000' } }).withExif({ IFD0: { Make: 'Acme' } }).jpeg().toBuffer().then((b) => sharp(b).metadata())).exif!);
    for (const channels of [1, 3, 4] as const) {
      for (const depth16 of [false, true]) {
        const w = 37, h = 11;
        const n = w * h * channels;
        const data = depth16 ? new Uint16Array(n).map((_, i) => (i * 7919) % 65536) : new Uint8Array(n).map((_, i) => (i * 31) % 256);
        const file = path.join(dir, `t${channels}${depth16}.png`);
        const wr = new PngStreamWriter({ file, width: w, height: h, channels, depth16, exif });
        await wr.push(data.subarray(0, 4 * w * channels), 4);
        await wr.push(data.subarray(4 * w * channels), h - 4);
        await wr.finish();
        const m = await sharp(file).metadata();
        assert.equal(m.channels, channels);
        assert.equal(m.depth, depth16 ? 'ushort' : 'uchar');
        assert.ok(m.exif?.includes('Acme'));
        let img = sharp(file);
        if (depth16) img = img.toColourspace(channels === 1 ? 'grey16' : 'rgb16');
        else if (channels === 1) img = img.toColourspace('b-w');
        const raw = await img.raw({ depth: depth16 ? 'ushort' : 'uchar' }).toBuffer();
        const got = depth16 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2) : raw;
        assert.deepEqual([...got], [...data], `${channels} channels, 16 bit ${depth16}`);
      }
    }
    const wr = new PngStreamWriter({ file: path.join(dir, 'short.png'), width: 2, height: 3, channels: 3, depth16: false });
    await wr.push(new Uint8Array(6), 1);
    await assert.rejects(wr.finish(), /got 1 of 3 rows/);
    wr.abort();
    assert.equal(pngChunk('IEND', Buffer.alloc(0)).toString('hex'), '0000000049454e44ae426082');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('ImageRows (band-wise decode through a temp file)', () => {
  // Reference: decodeImage, where libvips itself applies the orientation and holds the image.
  const cases: [string, number, boolean, 3 | 4 | 1 | 2][] = [];
  for (let o = 1; o <= 8; o++) cases.push([`orientation ${o}, RGBA 8 bit`, o, false, 4]);
  cases.push(['orientation 6, RGB 16 bit', 6, true, 3], ['orientation 3, grey 8 bit', 3, false, 1], ['orientation 7, grey+alpha 16 bit', 7, true, 2]);
  it('gives the same upright samples as libvips\' own autoOrient decode, in any band split (orientations 1-8, 8/16 bit, grey, alpha)', async () => {
    const dir = tmpDir();
    const sw = 13, sh = 7; // odd sizes catch off-by-one mirroring
    for (const [name, o, d16, ch] of cases) {
      const data = d16 ? new Uint16Array(sw * sh * ch) : new Uint8Array(sw * sh * ch);
      for (let i = 0; i < data.length; i++) data[i] = d16 ? (i * 2654435761) % 65536 : (i * 37 + (i >> 3)) % 256;
      const file = path.join(dir, `o${o}-${ch}-${d16 ? 16 : 8}.png`);
      let img = sharp(Buffer.from(data.buffer), { raw: { width: sw, height: sh, channels: ch } });
      if (d16) img = img.toColourspace(ch <= 2 ? 'grey16' : 'rgb16');
      await img.withMetadata({ orientation: o }).png().toFile(file);
      const ref = await decodeImage(file);
      const rows = await openImageRows(file, path.join(dir, `.duoscale-${o}-${ch}.v`));
      try {
        assert.equal(ref.info.width, o >= 5 ? sh : sw, `${name}: libvips applied the orientation`);
        assert.equal(rows.width, ref.info.width, name);
        assert.equal(rows.height, ref.info.height, name);
        assert.equal(rows.depth16, d16, name);
        assert.equal(rows.hasAlpha, ch === 2 || ch === 4, name);
        // Bands of 1, 2 and 3 rows, covering the image.
        for (const step of [1, 2, 3]) {
          for (let y = 0; y < rows.height; y += step) {
            const y1 = Math.min(rows.height, y + step);
            const got = rows.rows(y, y1);
            const W: number = rows.width;
            assert.deepEqual([...got.rgb], [...ref.pixels.subarray(y * W * 3, y1 * W * 3)], `${name}: rgb rows ${y}-${y1}`);
            if (ref.alpha) assert.deepEqual([...got.alpha!], [...ref.alpha.subarray(y * W, y1 * W)], `${name}: alpha rows ${y}-${y1}`);
            else assert.equal(got.alpha, null);
          }
        }
        assert.throws(() => rows.rows(0, rows.height + 1), RangeError);
      } finally {
        rows.close();
      }
      assert.ok(!fs.existsSync(rows.file), 'close() deletes the temp file');
    }
  });
  it('refuses a non-image with the file named and cleans up its temp file', async () => {
    const dir = tmpDir();
    const bad = path.join(dir, 'notes.jpg');
    fs.writeFileSync(bad, 'not an image at all');
    const tmp = path.join(dir, '.duoscale-x.v');
    await assert.rejects(openImageRows(bad, tmp), (e: Error & { code?: string }) => e.code === 'E_NOT_IMAGE' && e.message.includes(bad));
    assert.ok(!fs.existsSync(tmp));
  });
});
