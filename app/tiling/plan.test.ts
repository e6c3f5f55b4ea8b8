import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accumulateTile, axisWeights, extractTile, quantize, reflect } from './blend.ts';
import { chooseTileSize, plan, planAxis, shrinkTile } from './plan.ts';

describe('planAxis', () => {
  it('covers the axis with tiles inside the image, neighbours overlapping by at least the overlap', () => {
    for (const [len, tile, ov] of [[1000, 128, 16], [129, 128, 16], [257, 64, 8], [64, 64, 8], [5, 64, 8], [3001, 96, 24]]) {
      const a = planAxis(len, tile, ov);
      assert.equal(a.starts[0], 0);
      assert.equal(a.starts[a.starts.length - 1] + a.size, len, `last tile ends at the edge for ${len}`);
      for (let i = 1; i < a.starts.length; i++) {
        const overlap = a.starts[i - 1] + a.size - a.starts[i];
        assert.ok(overlap >= ov, `overlap ${overlap} >= ${ov} (len ${len})`);
        assert.ok(a.starts[i] > a.starts[i - 1]);
      }
      assert.equal(a.size, Math.min(tile, len));
    }
  });
});

describe('plan', () => {
  it('pads small tiles up to the multiple and orders tiles row-major', () => {
    const p = plan(50, 300, 64, 8, 8);
    assert.equal(p.cols.starts.length, 1);
    assert.equal(p.tiles[0].w, 50);
    assert.equal(p.tiles[0].padW, 56);
    assert.equal(p.tiles[0].padH, 64);
    assert.ok(p.tiles.every((t, i) => t.index === i && t.col === 0));
    assert.deepEqual(p.tiles.map((t) => t.row), p.rows.starts.map((_, r) => r));
  });
  it('rounds the tile down to the pad multiple and clamps the overlap to a quarter tile', () => {
    const p = plan(500, 500, 100, 60, 16);
    assert.equal(p.tile, 96);
    assert.equal(p.overlap, 24);
  });
});

describe('axisWeights', () => {
  it('sums to exactly 1 at every output pixel and gives each tile outer overlap no weight', () => {
    for (const [len, tile, ov, s] of [[300, 64, 16, 4], [65, 64, 16, 4], [1000, 128, 16, 2], [40, 64, 8, 4]]) {
      const a = planAxis(len, tile, ov);
      const ws = axisWeights(a, s);
      const sum = new Float64Array(len * s);
      ws.forEach((w, i) => w.forEach((v, k) => { sum[a.starts[i] * s + k] += v; assert.ok(v >= 0 && v <= 1); }));
      for (let x = 0; x < sum.length; x++) assert.ok(Math.abs(sum[x] - 1) < 1e-6, `sum at ${x} = ${sum[x]}`);
      for (let i = 0; i + 1 < ws.length; i++) {
        // The last output pixel of tile i lies in its overlap with i+1: weight 0 there.
        assert.equal(ws[i][ws[i].length - 1], 0);
        assert.equal(ws[i + 1][0], 0);
      }
    }
  });
});

describe('extract/accumulate', () => {
  it('reflects at the edge without repeating the edge pixel', () => {
    assert.deepEqual([-2, -1, 0, 4, 5, 6].map((i) => reflect(i, 5)), [2, 1, 0, 4, 3, 2]);
    assert.equal(reflect(7, 1), 0);
  });
  it('extracts planar [0,1] floats with reflect padding', () => {
    const w = 3, h = 2;
    const src = new Uint8Array(w * h * 3).map((_, i) => i * 10);
    const t = { index: 0, row: 0, col: 0, x: 0, y: 0, w: 3, h: 2, padW: 4, padH: 4 };
    const out = extractTile(src, w, h, 3, t);
    assert.equal(out.length, 3 * 16);
    assert.equal(out[0], 0);
    assert.equal(out[3], Math.fround(src[(0 * w + 1) * 3] / 255)); // x=3 reflects to x=1
    assert.equal(out[16 + 2 * 4 + 0], Math.fround(src[(0 * w + 0) * 3 + 1] / 255)); // G plane, y=2 reflects to y=0
  });
  it('accumulating two tiles with complementary weights reproduces a constant image', () => {
    const a = planAxis(20, 12, 4);
    const wx = axisWeights(a, 2);
    const wy = axisWeights({ length: 3, size: 3, starts: [0] }, 2);
    const band = new Float32Array(6 * 40 * 3);
    for (let c = 0; c < a.starts.length; c++) {
      const tile = { index: c, row: 0, col: c, x: a.starts[c], y: 0, w: 12, h: 3, padW: 12, padH: 4 };
      const hr = new Float32Array(3 * 24 * 8).fill(0.25);
      accumulateTile(band, 0, 40, hr, tile, 2, wx[c], wy[0]);
    }
    for (const v of band) assert.ok(Math.abs(v - 0.25) < 1e-6);
    const q = quantize(band, false);
    assert.ok(q.every((v) => v === 64));
    assert.ok(quantize(new Float32Array([-0.1, 1.2, 0.5]), true).every((v, i) => v === [0, 65535, 32768][i]));
  });
});

describe('tile size', () => {
  it('shrinks by about half down to a minimum', () => {
    assert.equal(shrinkTile(128, 8), 64);
    assert.equal(shrinkTile(64, 8), 32);
    assert.equal(shrinkTile(32, 8), null);
    assert.equal(shrinkTile(100, 16, 16), 48);
  });
  it('chooses a smaller tile when the memory budget is small', () => {
    const base = { recommended: 256, padMultiple: 8, scale: 4, noiseChannels: 48, params: 2_000_000 };
    const big = chooseTileSize({ ...base, budgetBytes: 64 * 2 ** 30 });
    const small = chooseTileSize({ ...base, budgetBytes: 64 * 2 ** 20 });
    assert.equal(big, 256);
    assert.ok(small < big && small >= 32, `small budget gave ${small}`);
    assert.equal(chooseTileSize({ ...base, budgetBytes: 1 }), 32);
  });
});
