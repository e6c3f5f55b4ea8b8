import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuoscaleError } from '../errors.ts';
import { ModelRegistry, type LoadedModel } from '../models/registry.ts';
import { FIXTURES, photoPixels, tmpDir } from '../test/helpers/images.ts';
import { writeIdentityModel } from '../test/helpers/onnx.ts';
import { plan } from '../tiling/plan.ts';
import { runTiles, type RowSink } from './run.ts';
import { getSession, releaseSessions, type ModelSession } from './session.ts';

/** Collects the streamed rows into one float image (fine for test-sized images). */
class Collect implements RowSink {
  img: Float32Array;
  next = 0;
  resets = 0;
  constructor(readonly w: number, readonly h: number) { this.img = new Float32Array(w * h * 3); }
  rows(data: Float32Array, y0: number, y1: number): void {
    assert.equal(y0, this.next, 'rows arrive in order, without gaps');
    assert.equal(data.length, (y1 - y0) * this.w * 3);
    this.img.set(data, y0 * this.w * 3);
    this.next = y1;
  }
  reset(): void { this.next = 0; this.img.fill(0); this.resets++; }
}

function gradient(w: number, h: number): Uint8Array {
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3;
    px[i] = Math.round(40 + (170 * x) / (w - 1));
    px[i + 1] = Math.round(60 + (150 * y) / (h - 1));
    px[i + 2] = Math.round(200 - (120 * (x + y)) / (w + h - 2));
  }
  return px;
}

let model: LoadedModel;
let ms: ModelSession;

async function run(pixels: Uint8Array, w: number, h: number, tile: number, overlap: number, seed = 5) {
  const s = model.manifest.scale;
  const sink = new Collect(w * s, h * s);
  const r = await runTiles({ session: ms, pixels, width: w, height: h, channels: 3, seed, tile, overlap, sink });
  assert.equal(sink.next, h * s, 'every row delivered');
  return { img: sink.img, plan: r.plan, sink, result: r };
}

/**
 * |second difference| of the mean profile across x (column means) and across y (row means),
 * taken per band of 32 output rows/columns so a step that changes sign between tile rows
 * does not average away. Averaging along the boundary removes the model's pixel texture,
 * which would otherwise hide a seam of a few levels; a seam is a step along the whole
 * boundary, so it survives the averaging. Max over bands, in levels.
 */
function seamProfiles(img: Float32Array, W: number, H: number, band = 32) {
  const col = new Float64Array(W);
  const row = new Float64Array(H);
  for (let b0 = 0; b0 + band <= H; b0 += band) {
    const m = new Float64Array(W);
    for (let y = b0; y < b0 + band; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) m[x] += img[(y * W + x) * 3 + c] * 255 / (band * 3);
    for (let x = 1; x < W - 1; x++) col[x] = Math.max(col[x], Math.abs(m[x - 1] - 2 * m[x] + m[x + 1]));
  }
  for (let b0 = 0; b0 + band <= W; b0 += band) {
    const m = new Float64Array(H);
    for (let y = 0; y < H; y++) for (let x = b0; x < b0 + band; x++) for (let c = 0; c < 3; c++) m[y] += img[(y * W + x) * 3 + c] * 255 / (band * 3);
    for (let y = 1; y < H - 1; y++) row[y] = Math.max(row[y], Math.abs(m[y - 1] - 2 * m[y] + m[y + 1]));
  }
  return { col, row };
}

describe('tiled inference (fixture model tiny-x4)', () => {
  before(async () => {
    const reg = new ModelRegistry(FIXTURES, path.join(tmpDir(), 'user'));
    model = await reg.load('tiny-x4');
    ms = await getSession(model, 'cpu', 1);
  });
  after(releaseSessions);

  it('caches sessions per model, provider and threads', async () => {
    assert.equal(await getSession(model, 'cpu', 1), ms);
    assert.notEqual(await getSession(model, 'cpu', 2), ms);
    assert.equal(ms.provider, 'cpu');
  });

  // The fixture (trainer export, PixelNorm UNet) has no per-tile statistics: a pixel's output
  // depends only on its receptive field, measured at 16-17 LR px each side (1e-6) and 9-11 px
  // at a quarter level. Tiles then differ from the whole image only where a weighted output
  // pixel's receptive field reaches past its tile's edge (zero padding instead of the
  // neighbour's content). With the manifest's overlap 24, weighted pixels are >= 6 px and
  // full-weight ones >= 18 px inside their tile: measured mean 0.0001, p99.9 0.01, max 0.035
  // levels. Bounds: mean <= 0.01, max <= 0.25 levels (was mean <= 0.75, p99.9 <= 5 for the
  // temporary InstanceNorm fixture, which differed everywhere). The control with overlap 8
  // (weighted pixels only 2 px inside the tile edge) measured max 12 levels: it must stay
  // > 2 levels, proving the comparison can see what the receptive field does past the overlap.
  it('tiled output matches whole-image output once the overlap covers the receptive field: max |diff| <= 0.25 levels (overlap 8 control > 2)', async () => {
    const w = 168, h = 168; // 96 + 72: 96-px tiles overlap by exactly 24 px (no slack from even spreading)
    const px = photoPixels(w, h, 11);
    const ov = model.manifest.tile.overlap;
    assert.equal(ov, 24, 'the fixture manifest recommends overlap 24 (scripts/make-fixture-model.sh)');
    const whole = await run(px, w, h, 256, ov);
    assert.equal(whole.plan.tiles.length, 1);
    const stats = (img: Float32Array) => {
      const d = whole.img.map((v, i) => Math.abs(v - img[i]) * 255);
      const sorted = Float32Array.from(d).sort();
      return { mean: d.reduce((a, b) => a + b, 0) / d.length, p999: sorted[Math.floor(sorted.length * 0.999)], max: sorted[sorted.length - 1] };
    };
    const tiled = await run(px, w, h, 96, ov);
    assert.equal(tiled.plan.tiles.length, 4);
    assert.equal(tiled.plan.cols.starts[0] + tiled.plan.cols.size - tiled.plan.cols.starts[1], ov);
    const t = stats(tiled.img);
    const control = stats((await run(px, w, h, 32, 8)).img);
    console.log(`# tiled (96/${ov}) vs whole: mean ${t.mean.toFixed(4)} levels, p99.9 ${t.p999.toFixed(3)}, max ${t.max.toFixed(3)}; ` +
      `control 32/8: mean ${control.mean.toFixed(3)}, max ${control.max.toFixed(2)}`);
    assert.ok(t.mean <= 0.01, `mean |diff| ${t.mean}`);
    assert.ok(t.max <= 0.25, `max |diff| ${t.max}`);
    assert.ok(control.max > 2, `control with overlap 8 shows the receptive field past the overlap (${control.max})`);
  });

  it('a smooth gradient shows no seam lines at tile boundaries', async () => {
    const w = 128, h = 96;
    const tiled = await run(gradient(w, h), w, h, 32, 8);
    const whole = await run(gradient(w, h), w, h, 256, 16);
    const s = model.manifest.scale;
    const W = w * s, H = h * s;
    // Output columns/rows where neighbouring tiles meet (their whole overlap, +-2 px).
    const seamCols = new Set<number>();
    const seamRows = new Set<number>();
    const mark = (axis: typeof tiled.plan.cols, set: Set<number>) => {
      for (let i = 0; i + 1 < axis.starts.length; i++) {
        for (let x = axis.starts[i + 1] * s - 2; x < (axis.starts[i] + axis.size) * s + 2; x++) set.add(x);
      }
    };
    mark(tiled.plan.cols, seamCols);
    mark(tiled.plan.rows, seamRows);
    assert.ok(seamCols.size > 0 && seamRows.size > 0);
    for (const [name, img] of [['tiled', tiled.img], ['whole', whole.img]] as const) {
      const { col, row } = seamProfiles(img, W, H);
      const inner = (n: number, skip: Set<number>, arr: Float64Array) => Array.from(arr).filter((_, i) => i > 4 && i < n - 5 && !skip.has(i));
      const seamMax = (set: Set<number>, arr: Float64Array, n: number) => Math.max(...[...set].filter((i) => i > 4 && i < n - 5).map((i) => arr[i]));
      const elseCol = Math.max(...inner(W, seamCols, col));
      const elseRow = Math.max(...inner(H, seamRows, row));
      const rc = seamMax(seamCols, col, W) / elseCol;
      const rr = seamMax(seamRows, row, H) / elseRow;
      console.log(`# ${name}: seam/elsewhere max second difference: columns ${rc.toFixed(3)}, rows ${rr.toFixed(3)}`);
      if (name === 'tiled') {
        assert.ok(rc <= 1.25, `column seams ${rc}`);
        assert.ok(rr <= 1.25, `row seams ${rr}`);
      }
    }
  });

  it('a deterministic model (manifest noise_strength 0) gets zeros for noise: its output is the noise-free one for any seed', async () => {
    const dir = tmpDir();
    // The graph adds 0.05 x the noise's channel mean, so any noise the engine fed would show.
    writeIdentityModel(dir, 'id-det', { noiseGain: 0.05, manifest: { noise_strength: 0 } });
    writeIdentityModel(dir, 'id-bad', { noiseGain: 0.05, manifest: { noise_strength: 2 } });
    const reg = new ModelRegistry(dir, path.join(dir, 'u'));
    const ids = await getSession(await reg.load('id-det'), 'cpu', 1);
    const w = 40, h = 24;
    const px = photoPixels(w, h, 6);
    const go = async (seed: number) => {
      const sink = new Collect(w * 4, h * 4);
      await runTiles({ session: ids, pixels: px, width: w, height: h, channels: 3, seed, tile: 32, overlap: 8, sink });
      return sink.img;
    };
    const a = await go(1);
    assert.deepEqual(a, await go(2));
    let max = 0;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
      max = Math.max(max, Math.abs(a[((y * 4) * w * 4 + x * 4) * 3 + c] - px[(y * w + x) * 3 + c] / 255));
    }
    assert.ok(max < 1e-6, `replicated exactly, max |diff| ${max}`);
    await assert.rejects(reg.load('id-bad'), (e: DuoscaleError) => /^[^:]*id-bad\.json: the model manifest is refused: "noise_strength" must be a number from 0 to 1/.test(e.message));
  });

  it('a model whose pixel head reads the noise (manifest head_noise) gets seeded, tile-consistent noise even at noise_strength 0', async () => {
    const dir = tmpDir();
    writeIdentityModel(dir, 'id-head', { noiseGain: 0.05, manifest: { noise_strength: 0, head_noise: true } });
    writeIdentityModel(dir, 'id-head-bad', { noiseGain: 0.05, manifest: { noise_strength: 0, head_noise: 'yes' } });
    const reg = new ModelRegistry(dir, path.join(dir, 'u'));
    const ids = await getSession(await reg.load('id-head'), 'cpu', 1);
    const w = 40, h = 24;
    const px = photoPixels(w, h, 8);
    const go = async (seed: number, tile = 32) => {
      const sink = new Collect(w * 4, h * 4);
      await runTiles({ session: ids, pixels: px, width: w, height: h, channels: 3, seed, tile, overlap: 8, sink });
      return sink.img;
    };
    const a = await go(1);
    let moved = 0;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (Math.abs(a[((y * 4) * w * 4 + x * 4) * 3] - px[(y * w + x) * 3] / 255) > 1e-3) moved++;
    assert.ok(moved > (w * h) / 2, `${moved} pixels moved by the noise`);
    assert.deepEqual(a, await go(1), 'same seed, same output');
    assert.notDeepEqual(a, await go(2), 'another seed, another draw');
    const whole = await go(1, 128);
    let max = 0;
    for (let i = 0; i < whole.length; i++) max = Math.max(max, Math.abs(whole[i] - a[i]));
    assert.ok(max < 1e-5, `tiled and whole agree, max |diff| ${max}`);
    await assert.rejects(reg.load('id-head-bad'), (e: DuoscaleError) => /id-head-bad\.json: the model manifest is refused: "head_noise" must be true or false/.test(e.message));
  });

  it('a model with repair noise (manifest restore.noise_strength) gets zeros at restore 0 and seeded, tile-consistent noise once repair is on', async () => {
    const dir = tmpDir();
    // restoreGain 0: the restore input itself changes nothing, so any difference is the fed noise.
    writeIdentityModel(dir, 'id-repair', { noiseGain: 0.05, restoreGain: 0,
      manifest: { noise_strength: 0, restore: { input: 'restore', shape: ['1'], range: [0, 1], noise_strength: 0.75 } } });
    writeIdentityModel(dir, 'id-repair-bad', { noiseGain: 0.05, restoreGain: 0,
      manifest: { noise_strength: 0, restore: { input: 'restore', range: [0, 1], noise_strength: 1.5 } } });
    const reg = new ModelRegistry(dir, path.join(dir, 'u'));
    const ids = await getSession(await reg.load('id-repair'), 'cpu', 1);
    const w = 40, h = 24;
    const px = photoPixels(w, h, 7);
    const go = async (seed: number, restore: number, tile = 32) => {
      const sink = new Collect(w * 4, h * 4);
      await runTiles({ session: ids, pixels: px, width: w, height: h, channels: 3, seed, restore, tile, overlap: 8, sink });
      return sink.img;
    };
    const moved = (img: Float32Array) => {
      let n = 0;
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (Math.abs(img[((y * 4) * w * 4 + x * 4) * 3] - px[(y * w + x) * 3] / 255) > 1e-3) n++;
      return n;
    };
    const off1 = await go(1, 0);
    assert.deepEqual(off1, await go(2, 0), 'repair off: the seed does not matter');
    assert.equal(moved(off1), 0, 'repair off: the exact upscale');
    const on1 = await go(1, 1);
    assert.ok(moved(on1) > (w * h) / 2, `repair on: ${moved(on1)} pixels moved by the noise`);
    assert.notDeepEqual(on1, await go(2, 1), 'repair on: another seed, another draw');
    const whole = await go(1, 1, 128);
    let max = 0;
    for (let i = 0; i < whole.length; i++) max = Math.max(max, Math.abs(whole[i] - on1[i]));
    assert.ok(max < 1e-5, `repair on: tiled and whole agree, max |diff| ${max}`);
    await assert.rejects(reg.load('id-repair-bad'), (e: DuoscaleError) => /id-repair-bad\.json: the model manifest is refused: "restore" must be/.test(e.message));
  });

  it('for a per-pixel model (identity x4 + seeded noise) tiled and whole outputs are equal to float precision', async () => {
    const dir = tmpDir();
    writeIdentityModel(dir, 'id-noise', { noiseGain: 0.05 });
    const idm = await new ModelRegistry(dir, path.join(dir, 'u')).load('id-noise');
    const ids = await getSession(idm, 'cpu', 1);
    const w = 90, h = 70;
    const px = photoPixels(w, h, 4);
    const go = async (tile: number, overlap: number) => {
      const sink = new Collect(w * 4, h * 4);
      await runTiles({ session: ids, pixels: px, width: w, height: h, channels: 3, seed: 3, tile, overlap, sink });
      return sink.img;
    };
    const whole = await go(128, 16);
    const tiled = await go(32, 8);
    let max = 0;
    for (let i = 0; i < whole.length; i++) max = Math.max(max, Math.abs(whole[i] - tiled[i]));
    assert.ok(max < 1e-5, `max |diff| ${max}`);
    // ...and the noise really reaches the output (so the equality is not trivial).
    let moved = 0;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (Math.abs(whole[((y * 4) * w * 4 + x * 4) * 3] - px[(y * w + x) * 3] / 255) > 1e-3) moved++;
    assert.ok(moved > (w * h) / 2, `${moved} pixels changed by the noise`);
  });

  it('feathering hides per-tile disagreement: a gradient through a tile-statistics model has no seam (<= 0.5 level second difference; a hard seam gives > 5)', async () => {
    const dir = tmpDir();
    writeIdentityModel(dir, 'tile-mean', { mode: 'linear', meanGain: 0.5 });
    const tm = await new ModelRegistry(dir, path.join(dir, 'u')).load('tile-mean');
    const tms = await getSession(tm, 'cpu', 1);
    const w = 128, h = 96, W = w * 4, H = h * 4;
    const go = async (overlap: number) => {
      const sink = new Collect(W, H);
      const r = await runTiles({ session: tms, pixels: gradient(w, h), width: w, height: h, channels: 3, seed: 0, tile: 32, overlap, sink });
      return { img: sink.img, plan: r.plan };
    };
    const worst = (img: Float32Array) => {
      // Largest |second difference| in levels across x and across y, away from the image border.
      let m = 0;
      for (let y = 8; y < H - 8; y++) for (let x = 8; x < W - 8; x++) for (let c = 0; c < 3; c++) {
        const i = (y * W + x) * 3 + c;
        m = Math.max(m, Math.abs(img[i - 3] - 2 * img[i] + img[i + 3]) * 255, Math.abs(img[i - 3 * W] - 2 * img[i] + img[i + 3 * W]) * 255);
      }
      return m;
    };
    const feathered = worst((await go(8)).img);
    const hard = worst((await go(0)).img);
    console.log(`# tile-statistics model: max second difference ${feathered.toFixed(3)} levels feathered, ${hard.toFixed(2)} with hard seams`);
    assert.ok(hard > 5, `the hard-seam control shows a seam (${hard})`);
    assert.ok(feathered <= 0.5, `feathered seams ${feathered}`);
  });

  it('same seed gives identical output, another seed a different one', async () => {
    const w = 40, h = 32;
    const px = photoPixels(w, h, 2);
    const a = await run(px, w, h, 32, 8, 7);
    const b = await run(px, w, h, 32, 8, 7);
    const c = await run(px, w, h, 32, 8, 8);
    assert.deepEqual(a.img, b.img);
    let differ = 0;
    for (let i = 0; i < a.img.length; i++) if (a.img[i] !== c.img[i]) differ++;
    assert.ok(differ > a.img.length / 10, `${differ} samples differ`);
  });

  it('shrinks the tile and starts again when a tile fails for memory (allocation failure simulated: it cannot be provoked reliably here)', async () => {
    const w = 100, h = 80;
    const px = photoPixels(w, h, 3);
    const sink = new Collect(w * 4, h * 4);
    let failed = 0;
    const r = await runTiles({
      session: ms, pixels: px, width: w, height: h, channels: 3, seed: 1, tile: 64, overlap: 8, sink,
      // Fail the second 64-px tile, so some rows were already delivered when it happens.
      simulateOutOfMemory: (t) => t.w * t.h > 32 * 32 && t.index === 1 && ++failed > 0,
    });
    assert.deepEqual(r.tileSizes, [64, 32]);
    assert.equal(sink.resets, 1);
    assert.equal(sink.next, h * 4);
    const direct = await run(px, w, h, 32, 8, 1);
    assert.deepEqual(sink.img, direct.img, 'the retry equals a direct 32-px run');
    await assert.rejects(
      runTiles({ session: ms, pixels: px, width: w, height: h, channels: 3, seed: 1, tile: 64, overlap: 8, sink: new Collect(w * 4, h * 4), file: '/p/x.jpg', simulateOutOfMemory: () => true }),
      (e: DuoscaleError) => e.code === 'E_OUT_OF_MEMORY' && /^\/p\/x\.jpg: not enough memory even with 32px tiles/.test(e.message));
  });

  it('stops between tiles when cancelled', async () => {
    const ac = new AbortController();
    let tiles = 0;
    await assert.rejects(
      runTiles({ session: ms, pixels: photoPixels(64, 64), width: 64, height: 64, channels: 3, seed: 1, tile: 32, overlap: 8,
        sink: new Collect(256, 256), signal: ac.signal, onTile: (d) => { tiles = d; if (d === 2) ac.abort(); } }),
      (e: DuoscaleError) => e.code === 'E_CANCELLED');
    assert.equal(tiles, 2);
    assert.ok(plan(64, 64, 32, 8, 2).tiles.length > 2);
  });
});
