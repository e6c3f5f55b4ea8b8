// End-to-end tests of enhanceFile on real files made here.
//
// Colour/metadata round trips use a replicating x4 model written by the tests (see
// test/helpers/onnx.ts) at output scale 1x: the 4x result box-reduced by 4 must then equal the
// decoded input, so any colour, depth, orientation or alpha error is the pipeline's, and the
// bounds can be tight. Stated bounds (8-bit levels unless said):
//   16-bit PNG -> PNG 16: exact (max |diff| 0 in 16-bit units)
//   P3 ICC PNG -> PNG with P3 profile: samples in the P3 space max |diff| <= 1
//   CMYK JPEG -> PNG: equals libvips' own CMYK->sRGB conversion, max |diff| <= 1
//   grayscale JPEG -> grayscale JPEG q95: mean |diff| <= 1, max <= 4 (JPEG re-encode)
//   EXIF orientation 6 -> upright PNG: max |diff| 0 vs sharp's .rotate() of the same file
//   alpha at 1x: exact; at 4x: centre-aligned (alpha mass per row = 4x the input's +- 0.5%)
//   flat colour through JPEG q95 output at 4x: channel means within 1 level
// The fixture model tiny-x4 (trainer export) is used where its own behaviour is the subject:
// seeds, variations, formats.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { enhanceFile, planOutputs, type ResolvedOptions } from './enhance.ts';
import { DuoscaleError } from './errors.ts';
import { iccDescription } from './image/color.ts';
import { readOrientation } from './image/metadata.ts';
import { releaseSessions } from './inference/session.ts';
import { ModelRegistry, type LoadedModel } from './models/registry.ts';
import { channelMeans, FIXTURES, flat, maxAbsDiff, meanAbsDiff, photoPixels, rawInput, readRaw, tmpDir } from './test/helpers/images.ts';
import { writeIdentityModel } from './test/helpers/onnx.ts';

let root: string;
let identity: LoadedModel;
let tiny: LoadedModel;

function opts(o: Partial<ResolvedOptions> = {}): ResolvedOptions {
  return {
    model: 'identity-x4', scale: 1, format: 'png', quality: 95, naming: '{name}_x{scale}_{model}', tile: 0, seed: 0,
    variations: 1, keepMetadata: true, force: false, provider: 'cpu', threads: 1, ...o,
  };
}

const XMP = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
  + '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6">'
  + '<dc:creator><rdf:Seq><rdf:li>Zoë Tester</rdf:li></rdf:Seq></dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>';

async function expectError(p: Promise<unknown>, code: string, file: string, re: RegExp): Promise<DuoscaleError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof DuoscaleError, `expected a DuoscaleError, got ${(e as Error)?.stack}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.startsWith(`${file}: `), `message names the file: ${e.message}`);
    assert.match(e.message, re);
    assert.ok(e.hint && e.message.endsWith(e.hint.replace(/\.?$/, '.')), `message ends with what to do: ${e.message}`);
    return e;
  }
  assert.fail(`expected ${code}`);
}

function noTempLeft(dir: string): void {
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? [e.name, ...walk(path.join(d, e.name))] : [e.name]);
  const left = walk(dir).filter((n) => n.startsWith('.duoscale-'));
  assert.deepEqual(left, [], 'no temp files or folders left');
}

before(async () => {
  root = tmpDir();
  writeIdentityModel(path.join(root, 'models'), 'identity-x4');
  identity = await new ModelRegistry(path.join(root, 'models'), path.join(root, 'user')).load('identity-x4');
  tiny = await new ModelRegistry(FIXTURES, path.join(root, 'user')).load('tiny-x4');
});
after(releaseSessions);

describe('colour and metadata round trips (replicating model, 1x)', () => {
  const w = 48, h = 40;
  const base = () => rawInput(photoPixels(w, h, 3), w, h, 3);

  it('CMYK JPEG: converted to sRGB once, max |diff| <= 1 vs libvips\' own conversion', async () => {
    const input = path.join(root, 'cmyk.jpg');
    await base().toColourspace('cmyk').jpeg({ quality: 95 }).toFile(input);
    assert.equal((await sharp(input).metadata()).space, 'cmyk');
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-cmyk'), model: identity, options: opts() });
    const m = await sharp(r.outputs[0].path).metadata();
    assert.equal(m.space, 'srgb');
    assert.equal(m.channels, 3);
    assert.ok(maxAbsDiff((await readRaw(input)).data, (await readRaw(r.outputs[0].path)).data) <= 1);
    assert.equal(r.input.space, 'cmyk');
    // With an embedded CMYK profile: converted through it, written as RGB with an sRGB profile.
    const tagged = path.join(root, 'cmyk-icc.jpg');
    await base().withIccProfile('cmyk').jpeg({ quality: 95 }).toFile(tagged);
    const tm = await sharp(tagged).metadata();
    assert.equal(tm.space, 'cmyk');
    assert.ok(tm.icc);
    const r2 = await enhanceFile({ input: tagged, outputDir: path.join(root, 'out-cmyk'), model: identity, options: opts() });
    assert.equal(r2.input.iccKind, 'cmyk');
    const m2 = await sharp(r2.outputs[0].path).metadata();
    assert.equal(m2.channels, 3);
    assert.match(iccDescription(m2.icc) ?? '', /sRGB/i);
    assert.ok(maxAbsDiff((await readRaw(tagged)).data, (await readRaw(r2.outputs[0].path)).data) <= 1);
  });

  it('16-bit PNG: stays 16 bit, samples exact', async () => {
    const input = path.join(root, 'deep.png');
    const px = new Uint16Array(w * h * 3).map((_, i) => (i * 977 + 13) % 65536);
    await rawInput(px, w, h, 3).toColourspace('rgb16').png().toFile(input);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out16'), model: identity, options: opts({ format: 'same' }) });
    assert.equal(r.input.depth16, true);
    const m = await sharp(r.outputs[0].path).metadata();
    assert.equal(m.depth, 'ushort');
    const out = await readRaw(r.outputs[0].path, { depth16: true });
    const o = new Uint16Array(out.data.buffer, out.data.byteOffset, out.data.length / 2);
    let max = 0;
    for (let i = 0; i < o.length; i++) max = Math.max(max, Math.abs(o[i] - px[i]));
    assert.equal(max, 0);
  });

  it('16-bit RGBA PNG at 2x: 16-bit colour replicated exactly, 16-bit alpha kept', async () => {
    const input = path.join(root, 'deep-alpha.png');
    const px = new Uint16Array(w * h * 4).map((_, i) => (i % 4 === 3 ? 40000 + (i % 7) * 1000 : (i * 613 + 5) % 65536));
    await rawInput(px, w, h, 4).toColourspace('rgb16').png().toFile(input);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out16a'), model: identity, options: opts({ scale: 2 }) });
    const m = await sharp(r.outputs[0].path).metadata();
    assert.deepEqual([m.depth, m.channels, m.width], ['ushort', 4, w * 2]);
    const out = await readRaw(r.outputs[0].path, { depth16: true });
    const o = new Uint16Array(out.data.buffer, out.data.byteOffset, out.data.length / 2);
    // Colour: nearest x4 then 2x2 box = each input pixel replicated 2x2.
    let maxC = 0;
    for (let y = 0; y < h * 2; y++) for (let x = 0; x < w * 2; x++) for (let c = 0; c < 3; c++) {
      maxC = Math.max(maxC, Math.abs(o[(y * w * 2 + x) * 4 + c] - px[((y >> 1) * w + (x >> 1)) * 4 + c]));
    }
    assert.equal(maxC, 0);
    const alphaIn = px.filter((_, i) => i % 4 === 3);
    const alphaOut = o.filter((_, i) => i % 4 === 3);
    assert.ok(alphaOut.some((v) => v % 257 !== 0), 'alpha keeps 16-bit precision');
    assert.ok(Math.abs(alphaOut.reduce((a, b) => a + b, 0) / alphaOut.length - alphaIn.reduce((a, b) => a + b, 0) / alphaIn.length) < 30);
  });

  it('EXIF orientation 6: applied before inference, output upright with orientation 1, EXIF and XMP kept', async () => {
    const input = path.join(root, 'rotated.jpg');
    await base().withExif({ IFD0: { Make: 'Acme', Copyright: 'Jane Tester' } }).withXmp(XMP).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toFile(input);
    assert.equal((await sharp(input).metadata()).orientation, 6);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-rot'), model: identity, options: opts() });
    assert.equal(r.input.width, h);
    assert.equal(r.input.height, w);
    assert.equal(r.input.orientation, 6);
    const m = await sharp(r.outputs[0].path).metadata();
    assert.equal(m.width, h);
    assert.equal(m.height, w);
    assert.ok(m.orientation === undefined || m.orientation === 1, `orientation ${m.orientation}`);
    assert.ok(m.exif && m.exif.includes('Acme') && m.exif.includes('Jane Tester'), 'EXIF kept');
    assert.ok(!m.exif || (readOrientation(m.exif) ?? 1) === 1);
    const xmp = m.xmp?.toString('utf8') ?? '';
    assert.match(xmp, /Zoë Tester/);
    assert.doesNotMatch(xmp, /tiff:Orientation="6"/);
    const upright = await sharp(input).rotate().raw().toBuffer();
    assert.equal(maxAbsDiff(upright, (await readRaw(r.outputs[0].path)).data), 0);
  });

  it('alpha: exact at 1x, upscaled on its own and centre-aligned at 4x, RGB unaffected', async () => {
    const input = path.join(root, 'alpha.png');
    const px = new Uint8Array(w * h * 4);
    const rgb = photoPixels(w, h, 5);
    for (let i = 0; i < w * h; i++) {
      const x = i % w;
      px.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
      px[i * 4 + 3] = x < 20 ? 255 : x < 30 ? 128 : 0; // steps inside the image
    }
    await rawInput(px, w, h, 4).png().toFile(input);
    const r1 = await enhanceFile({ input, outputDir: path.join(root, 'out-a1'), model: identity, options: opts() });
    const o1 = await readRaw(r1.outputs[0].path);
    assert.equal(o1.channels, 4);
    assert.equal(maxAbsDiff(px, o1.data), 0);
    const r4 = await enhanceFile({ input, outputDir: path.join(root, 'out-a4'), model: identity, options: opts({ scale: 4 }) });
    const o4 = await readRaw(r4.outputs[0].path);
    assert.equal(o4.width, w * 4);
    // Centre alignment: a symmetric kernel keeps each row's alpha mass at 4x the input's,
    // while a half-output-pixel shift (sharp's enlargement) would move it by ~0.5 px x 255 per edge.
    const inMass = px.filter((_, i) => i % 4 === 3 && Math.floor(i / 4) < w).reduce((a, b) => a + b, 0);
    for (const y of [0, 37, 100]) {
      let mass = 0;
      for (let x = 0; x < w * 4; x++) mass += o4.data[(y * w * 4 + x) * 4 + 3];
      assert.ok(Math.abs(mass / (4 * inMass) - 1) < 0.005, `row ${y}: alpha mass ${mass} vs ${4 * inMass}`);
    }
    // The 50% crossing of the 255 -> 128 -> 0 steps sits where the input's pixel edges are.
    const row = (x: number) => o4.data[(50 * w * 4 + x) * 4 + 3];
    assert.ok(row(79) > 191 && row(80) < 191, `edge at x=80: ${row(79)} ${row(80)}`);
    assert.ok(row(119) > 64 && row(120) < 64, `edge at x=120: ${row(119)} ${row(120)}`);
    // Colour of opaque pixels is not premultiplied or mixed with alpha.
    assert.ok(meanAbsDiff(o4.data.filter((_, i) => i % 4 !== 3 && Math.floor(i / 4) % (w * 4) < 60), 
      (await sharp(input).removeAlpha().resize(w * 4, h * 4, { kernel: 'nearest' }).raw().toBuffer()).filter((_, i) => Math.floor(i / 3) % (w * 4) < 60)) === 0);
  });

  it('grayscale with alpha: grey output keeps its alpha', async () => {
    const input = path.join(root, 'grey-alpha.png');
    const px = new Uint8Array(w * h * 2).map((_, i) => (i % 2 ? (i * 7) % 256 : (i * 3) % 256));
    await rawInput(px, w, h, 2).toColourspace('b-w').png().toFile(input);
    assert.equal((await sharp(input).metadata()).channels, 2);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-ga'), model: identity, options: opts() });
    const m = await sharp(r.outputs[0].path).metadata();
    assert.equal(m.channels, 2);
    // sharp hands grey+alpha out as RGBA with R = G = B.
    const rgba = await readRaw(r.outputs[0].path);
    assert.equal(rgba.channels, 4);
    const grey = rgba.data.filter((_, i) => i % 4 === 0);
    const alpha = rgba.data.filter((_, i) => i % 4 === 3);
    assert.equal(maxAbsDiff(px.filter((_, i) => i % 2 === 0), grey), 0);
    assert.equal(maxAbsDiff(px.filter((_, i) => i % 2 === 1), alpha), 0);
  });

  it('grayscale: stays one channel, within JPEG re-encode error (mean <= 1, max <= 4 levels)', async () => {
    const input = path.join(root, 'grey.jpg');
    await base().toColourspace('b-w').jpeg({ quality: 95 }).toFile(input);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-g'), model: identity, options: opts({ format: 'same' }) });
    assert.equal(r.input.grayscale, true);
    const m = await sharp(r.outputs[0].path).metadata();
    assert.equal(m.format, 'jpeg');
    assert.equal(m.channels, 1);
    const a = (await readRaw(input)).data;
    const b = (await readRaw(r.outputs[0].path)).data;
    assert.ok(meanAbsDiff(a, b) <= 1, `mean ${meanAbsDiff(a, b)}`);
    assert.ok(maxAbsDiff(a, b) <= 4, `max ${maxAbsDiff(a, b)}`);
  });

  it('Display P3 profile: converted to sRGB for the model and back, profile kept, P3 samples max |diff| <= 1', async () => {
    const input = path.join(root, 'p3.png');
    await base().withIccProfile('p3').png().toFile(input);
    const inMeta = await sharp(input).metadata();
    assert.match(iccDescription(inMeta.icc) ?? '', /P3/);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-p3'), model: identity, options: opts() });
    assert.match(r.input.metadata.icc ?? '', /P3/);
    const m = await sharp(r.outputs[0].path).metadata();
    assert.match(iccDescription(m.icc) ?? '', /P3/);
    const a = (await readRaw(input, { keepIcc: true })).data;
    const b = (await readRaw(r.outputs[0].path, { keepIcc: true })).data;
    assert.ok(maxAbsDiff(a, b) <= 1, `max ${maxAbsDiff(a, b)}`);
    // Converted for the model: the sRGB rendering of input and output agree too.
    assert.ok(maxAbsDiff((await readRaw(input)).data, (await readRaw(r.outputs[0].path)).data) <= 1);
  });

  it('flat colour at 4x through JPEG keeps its colour within 1 level', async () => {
    const input = path.join(root, 'flat.png');
    await flat(40, 30, [200, 90, 40]).png().toFile(input);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-flat'), model: identity, options: opts({ scale: 4, format: 'jpeg', quality: 95 }) });
    const means = channelMeans(await readRaw(r.outputs[0].path));
    [200, 90, 40].forEach((v, c) => assert.ok(Math.abs(means[c] - v) <= 1, `channel ${c}: ${means[c]}`));
  });

  it('non-ASCII folder and file name', async () => {
    const dir = path.join(root, 'Fotos');
    fs.mkdirSync(dir, { recursive: true });
    const input = path.join(dir, 'été 東京.jpg');
    await base().jpeg().toFile(input);
    const out = path.join(root, 'Ausgabe ü');
    const r = await enhanceFile({ input, outputDir: out, model: identity, options: opts({ format: 'same', naming: '{name} ({model})' }) });
    assert.equal(r.outputs[0].path, path.join(out, 'été 東京 (identity-x4).jpg'));
    assert.equal((await sharp(r.outputs[0].path).metadata()).width, w);
  });

  it('keeps ICC, EXIF and XMP in every output format (EXIF not in TIFF, XMP not in AVIF: libvips limits)', async () => {
    const input = path.join(root, 'meta.jpg');
    await base().withIccProfile('p3').withExif({ IFD0: { Make: 'Acme' } }).withXmp(XMP).jpeg({ quality: 95 }).toFile(input);
    for (const format of ['jpeg', 'png', 'webp', 'tiff', 'avif'] as const) {
      const r = await enhanceFile({ input, outputDir: path.join(root, 'out-fmt'), model: identity, options: opts({ format, scale: 2 }) });
      const m = await sharp(r.outputs[0].path).metadata();
      assert.equal(m.format, format === 'avif' ? 'heif' : format);
      assert.equal(m.width, w * 2);
      assert.equal(m.height, h * 2);
      assert.match(iccDescription(m.icc) ?? '', /P3/, `${format} ICC`);
      if (format !== 'tiff') assert.ok(m.exif?.includes('Acme'), `${format} EXIF`);
      if (format !== 'avif') assert.match(m.xmp?.toString('utf8') ?? '', /Zoë Tester/, `${format} XMP`);
      assert.equal(path.extname(r.outputs[0].path), { jpeg: '.jpg', png: '.png', webp: '.webp', tiff: '.tif', avif: '.avif' }[format]);
    }
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-nometa'), model: identity, options: opts({ keepMetadata: false }) });
    const m = await sharp(r.outputs[0].path).metadata();
    assert.equal(m.exif, undefined);
    assert.equal(m.xmp, undefined);
    assert.equal(m.icc, undefined);
    noTempLeft(path.join(root, 'out-fmt'));
  });
});

describe('output size, names and files', () => {
  it('scale 1/2/4 and a target width; a target above the model scale is refused', async () => {
    const input = path.join(root, 'size.png');
    await rawInput(photoPixels(30, 20, 9), 30, 20, 3).png().toFile(input);
    for (const scale of [1, 2, 4] as const) {
      const r = await enhanceFile({ input, outputDir: path.join(root, 'out-size'), model: identity, options: opts({ scale }) });
      const m = await sharp(r.outputs[0].path).metadata();
      assert.deepEqual([m.width, m.height, r.outputs[0].width, r.outputs[0].height], [30 * scale, 20 * scale, 30 * scale, 20 * scale]);
      assert.ok(r.outputs[0].path.endsWith(`size_x${scale}_identity-x4.png`));
    }
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-size'), model: identity, options: opts({ targetWidth: 75 }) });
    const m = await sharp(r.outputs[0].path).metadata();
    assert.deepEqual([m.width, m.height], [75, 50]);
    assert.ok(r.outputs[0].path.endsWith('size_xw75_identity-x4.png'));
    await expectError(enhanceFile({ input, outputDir: path.join(root, 'out-size'), model: identity, options: opts({ targetWidth: 121 }) }),
      'E_BAD_OPTION', input, /target width 121 px is more than the model's 4x \(120 px\)/);
  });

  it('naming template tokens; variations get distinct names', () => {
    const p = planOutputs({ input: '/in/a.b.jpg', inputFormat: 'jpeg', width: 10, height: 10, outputDir: '/out', relativeDir: 'sub/dir', modelId: 'm1',
      modelScale: 4, options: opts({ naming: '{name}-{ext}-{scale}-{model}-{seed}-{date}/x', seed: 41, variations: 2, format: 'webp' }), date: new Date(2026, 0, 5) });
    assert.deepEqual(p.outputs.map((o) => o.path), ['/out/sub/dir/a.b-jpg-1-m1-41-20260105_x.webp', '/out/sub/dir/a.b-jpg-1-m1-42-20260105_x.webp']);
    assert.throws(() => planOutputs({ input: '/in/a.png', inputFormat: 'png', width: 1, height: 1, outputDir: '/out', relativeDir: '../x', modelId: 'm', modelScale: 4, options: opts() }),
      (e: DuoscaleError) => e.code === 'E_BAD_OPTION' && /leads outside the output folder/.test(e.message));
    const q = planOutputs({ input: '/in/a.png', inputFormat: 'png', width: 10, height: 10, outputDir: '/out', modelId: 'm', modelScale: 4, options: opts({ naming: '{name}', variations: 3, seed: 7 }) });
    assert.deepEqual(q.outputs.map((o) => path.basename(o.path)), ['a_s7.png', 'a_s8.png', 'a_s9.png']);
  });

  it('never overwrites the input, writes atomically and leaves no temp files', async () => {
    const dir = path.join(root, 'same');
    fs.mkdirSync(dir, { recursive: true });
    const input = path.join(dir, 'keep.png');
    await rawInput(photoPixels(16, 16), 16, 16, 3).png().toFile(input);
    const before = fs.readFileSync(input);
    await expectError(enhanceFile({ input, outputDir: dir, model: identity, options: opts({ naming: '{name}', format: 'same' }) }),
      'E_WOULD_OVERWRITE', input, /would overwrite the original/);
    assert.deepEqual(fs.readFileSync(input), before);
    // An existing output (not the input) is replaced by the new file in one rename.
    const r = await enhanceFile({ input, outputDir: dir, model: identity, options: opts({ naming: '{name}_out' }) });
    fs.writeFileSync(r.outputs[0].path, 'old');
    await enhanceFile({ input, outputDir: dir, model: identity, options: opts({ naming: '{name}_out' }) });
    assert.equal((await sharp(r.outputs[0].path).metadata()).width, 16);
    noTempLeft(dir);
  });

  it('cancel stops the work and leaves nothing behind', async () => {
    const input = path.join(root, 'cancel.png');
    await rawInput(photoPixels(96, 96), 96, 96, 3).png().toFile(input);
    const out = path.join(root, 'out-cancel');
    const ac = new AbortController();
    await assert.rejects(enhanceFile({ input, outputDir: out, model: tiny, options: opts({ tile: 32 }), signal: ac.signal,
      onTile: (d) => { if (d === 3) ac.abort(); } }), (e: DuoscaleError) => e.code === 'E_CANCELLED');
    assert.deepEqual(fs.readdirSync(out), []);
  });
});

describe('input formats and providers', () => {
  it('reads WebP, TIFF, AVIF and GIF inputs; "same" writes the same format (GIF -> PNG)', async () => {
    const w = 24, h = 16;
    for (const [fmt, ext, outExt] of [['webp', 'webp', '.webp'], ['tiff', 'tif', '.tif'], ['avif', 'avif', '.avif'], ['gif', 'gif', '.png']] as const) {
      const input = path.join(root, `in-format.${ext}`);
      await rawInput(photoPixels(w, h, 6), w, h, 3).toFormat(fmt).toFile(input);
      const r = await enhanceFile({ input, outputDir: path.join(root, 'out-informat'), model: identity, options: opts({ format: 'same', scale: 2 }) });
      assert.equal(path.extname(r.outputs[0].path), outExt);
      const m = await sharp(r.outputs[0].path).metadata();
      assert.deepEqual([m.width, m.height], [w * 2, h * 2], fmt);
    }
  });

  it('refuses a result too large for the chosen format before doing any work', async () => {
    const input = path.join(root, 'wide.png');
    await flat(4100, 4, [5, 5, 5]).png().toFile(input);
    await expectError(enhanceFile({ input, outputDir: path.join(root, 'out-wide'), model: identity, options: opts({ format: 'webp', scale: 4 }) }),
      'E_BAD_OPTION', input, /16400x16, too large for WEBP.*Choose PNG or TIFF/);
  });

  it('a forced provider that is not available here gives a clear error', async () => {
    const input = path.join(root, 'prov.png');
    await flat(8, 8, [5, 5, 5]).png().toFile(input);
    const want = process.platform === 'darwin' ? 'cuda' : 'coreml';
    await assert.rejects(enhanceFile({ input, outputDir: path.join(root, 'out-prov'), model: identity, options: opts({ provider: want }) }),
      (e: DuoscaleError) => e.code === 'E_INFERENCE' && e.message.includes(`Provider "${want}" is not available here; use --provider auto or cpu`));
  });
});

describe('seeds and variations (fixture model tiny-x4)', () => {
  it('same seed gives identical bytes, another seed different ones, N variations give N outputs', async () => {
    const input = path.join(root, 'seed.png');
    await rawInput(photoPixels(40, 32, 8), 40, 32, 3).png().toFile(input);
    const o = (seed: number, dir: string, variations = 1) =>
      enhanceFile({ input, outputDir: path.join(root, dir), model: tiny, options: opts({ model: 'tiny-x4', scale: 4, seed, variations, tile: 32 }) });
    const a = await o(5, 's1');
    const b = await o(5, 's2');
    const c = await o(6, 's3');
    const bytes = (r: typeof a) => fs.readFileSync(r.outputs[0].path);
    assert.deepEqual(bytes(a), bytes(b));
    assert.notDeepEqual(bytes(a), bytes(c));
    let ticks = 0;
    let last = [0, 0];
    const v = await enhanceFile({ input, outputDir: path.join(root, 's4'), model: tiny,
      options: opts({ model: 'tiny-x4', scale: 4, seed: 5, variations: 3, tile: 32 }), onTile: (d, t) => { ticks++; last = [d, t]; assert.ok(d <= t); } });
    assert.deepEqual(v.outputs.map((x) => x.seed), [5, 6, 7]);
    assert.equal(new Set(v.outputs.map((x) => x.path)).size, 3);
    assert.deepEqual(fs.readFileSync(v.outputs[0].path), bytes(a));
    assert.deepEqual(fs.readFileSync(v.outputs[1].path), bytes(c));
    assert.notDeepEqual(fs.readFileSync(v.outputs[2].path), bytes(c));
    assert.equal(last[0], last[1], 'progress ends at total');
    assert.equal(ticks, last[1]);
    assert.equal(ticks % 3, 0, 'same tile count per variation');
  });

  it('shrink-and-retry through enhanceFile (allocation failure simulated)', async () => {
    const input = path.join(root, 'oom.png');
    await rawInput(photoPixels(80, 70, 2), 80, 70, 3).png().toFile(input);
    const r = await enhanceFile({ input, outputDir: path.join(root, 'out-oom'), model: tiny, options: opts({ model: 'tiny-x4', scale: 4, tile: 64 }),
      simulateOutOfMemory: (t) => t.padW * t.padH > 32 * 32 });
    assert.deepEqual(r.tileSizes, [64, 32]);
    assert.equal(r.tile, 32);
    assert.equal((await sharp(r.outputs[0].path).metadata()).width, 320);
    noTempLeft(path.join(root, 'out-oom'));
  });
});

describe('restore input (test model: output + gain x restore)', () => {
  it('feeds one restore value to every tile of a model that has the input; other models ignore it', async () => {
    const dir = path.join(root, 'models-restore');
    writeIdentityModel(dir, 'restore-x4', { restoreGain: 0.1 });
    const reg = new ModelRegistry(dir, path.join(root, 'user'));
    const restoring = await reg.load('restore-x4');
    const input = path.join(root, 'restore.png');
    await flat(48, 40, [100, 120, 140]).png().toFile(input);
    const run = async (model: LoadedModel, restore: number | undefined, out: string) => {
      const r = await enhanceFile({ input, outputDir: path.join(root, out), model,
        options: opts({ model: model.manifest.name, tile: 16, ...(restore === undefined ? {} : { restore }) }) });
      return channelMeans(await readRaw(r.outputs[0].path));
    };
    const off = await run(restoring, undefined, 'r0');
    const on = await run(restoring, 1, 'r1');
    const half = await run(restoring, 0.5, 'r05');
    // 0.1 of the [0,1] range is 25.5 levels; 6 tiles of 16 px, all shifted alike
    assert.deepEqual(off.map(Math.round), [100, 120, 140]);
    for (let c = 0; c < 3; c++) {
      assert.ok(Math.abs(on[c] - off[c] - 25.5) <= 0.6, `restore 1 adds 25.5 levels: ${off} -> ${on}`);
      assert.ok(Math.abs(half[c] - off[c] - 12.75) <= 0.6, `restore 0.5 adds half: ${off} -> ${half}`);
    }
    const plain = await run(identity, 1, 'r-plain');
    assert.deepEqual(plain.map(Math.round), [100, 120, 140], 'a model without the input ignores it');
  });

  it('a manifest that names a restore input the graph lacks is refused with the file named', async () => {
    const dir = path.join(root, 'models-bad-restore');
    writeIdentityModel(dir, 'lying-x4', { manifest: { restore: { input: 'restore', range: [0, 1] } } });
    const model = await new ModelRegistry(dir, path.join(root, 'user')).load('lying-x4');
    const input = path.join(root, 'restore-bad.png');
    await flat(16, 16, [10, 20, 30]).png().toFile(input);
    await assert.rejects(enhanceFile({ input, outputDir: path.join(root, 'rb'), model, options: opts({ model: 'lying-x4' }) }),
      (e: unknown) => e instanceof DuoscaleError && e.code === 'E_MODEL_MANIFEST' && /restore input "restore"/.test(e.message)
        && e.message.includes('lying-x4.json'));
  });
});

describe('bad input', () => {
  const out = () => path.join(root, 'out-bad');

  it('a PNG named .jpg is read as the PNG it is (format "same" gives .png)', async () => {
    const input = path.join(root, 'really-png.jpg');
    await rawInput(photoPixels(16, 12), 16, 12, 3).png().toFile(input);
    const r = await enhanceFile({ input, outputDir: out(), model: identity, options: opts({ format: 'same' }) });
    assert.equal(r.input.format, 'png');
    assert.ok(r.outputs[0].path.endsWith('really-png_x1_identity-x4.png'));
  });

  it('refuses truncated, empty, non-image and missing files with the file named and what to do', async () => {
    const full = await rawInput(photoPixels(64, 64), 64, 64, 3).jpeg({ quality: 90 }).toBuffer();
    const truncated = path.join(root, 'truncated.jpg');
    fs.writeFileSync(truncated, full.subarray(0, Math.floor(full.length * 0.6)));
    await expectError(enhanceFile({ input: truncated, outputDir: out(), model: identity, options: opts() }), 'E_TRUNCATED', truncated, /truncated or damaged.*Copy the photo again/);
    const png = await rawInput(photoPixels(64, 64), 64, 64, 3).png().toBuffer();
    const truncPng = path.join(root, 'truncated.png');
    fs.writeFileSync(truncPng, png.subarray(0, Math.floor(png.length * 0.6)));
    await expectError(enhanceFile({ input: truncPng, outputDir: out(), model: identity, options: opts() }), 'E_TRUNCATED', truncPng, /truncated/);
    const empty = path.join(root, 'empty.jpg');
    fs.writeFileSync(empty, '');
    await expectError(enhanceFile({ input: empty, outputDir: out(), model: identity, options: opts() }), 'E_EMPTY', empty, /empty \(0 bytes\)/);
    const text = path.join(root, 'notes.jpg');
    fs.writeFileSync(text, 'shopping list: milk, eggs\n');
    await expectError(enhanceFile({ input: text, outputDir: out(), model: identity, options: opts() }), 'E_NOT_IMAGE', text, /not an image.*JPEG, PNG/);
    const missing = path.join(root, 'missing.jpg');
    await expectError(enhanceFile({ input: missing, outputDir: out(), model: identity, options: opts() }), 'E_NOT_FOUND', missing, /does not exist/);
    if (fs.existsSync(out())) noTempLeft(out());
  });

  it('refuses an image over the pixel limit before decoding it', async () => {
    const input = path.join(root, 'big.png');
    await flat(300, 200, [1, 2, 3]).png().toFile(input);
    await expectError(enhanceFile({ input, outputDir: out(), model: identity, options: opts({ maxInputPixels: 50_000 }) }),
      'E_TOO_LARGE', input, /300x200 \(0\.1 MP\), over the limit of 0\.1 MP.*Downscale/);
  });

  it('refuses an output folder it cannot write to', async () => {
    const input = path.join(root, 'ok.png');
    await flat(8, 8, [9, 9, 9]).png().toFile(input);
    const blocker = path.join(root, 'a-file');
    fs.writeFileSync(blocker, 'x');
    const outDir = path.join(blocker, 'sub');
    await expectError(enhanceFile({ input, outputDir: outDir, model: identity, options: opts() }), 'E_OUTPUT_UNWRITABLE', outDir, /cannot write to the output folder.*Choose another output folder/);
  });
});
