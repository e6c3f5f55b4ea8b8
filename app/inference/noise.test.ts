import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { noiseAt, noiseWindow } from './noise.ts';

describe('seeded noise', () => {
  it('is a pure function of (seed, channel, y, x): a window equals the same region of a bigger window', () => {
    const big = noiseWindow(42, 4, -3, 5, 20, 10);
    const small = noiseWindow(42, 4, 4, 8, 6, 3);
    for (let c = 0; c < 4; c++) for (let y = 0; y < 3; y++) for (let x = 0; x < 6; x++) {
      assert.equal(small[(c * 3 + y) * 6 + x], big[(c * 10 + (y + 3)) * 20 + (x + 7)]);
    }
    assert.equal(Math.fround(noiseAt(42, 2, 9, 1)), big[(2 * 10 + 4) * 20 + 4]);
    assert.equal(Math.fround(noiseAt(42, 1, 5, -3)), big[(1 * 10 + 0) * 20 + 0]);
    assert.equal(Math.fround(noiseAt(42, 3, 14, 16)), big[(3 * 10 + 9) * 20 + 19]);
  });
  it('differs between seeds and is the same for the same seed', () => {
    const a = noiseWindow(1, 2, 0, 0, 16, 16);
    assert.deepEqual(noiseWindow(1, 2, 0, 0, 16, 16), a);
    const b = noiseWindow(2, 2, 0, 0, 16, 16);
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
    assert.equal(same, 0);
  });
  it('is standard normal: mean ~0, variance ~1, no correlation between neighbours or channels', () => {
    const w = 256, h = 128, C = 3;
    const n = noiseWindow(7, C, 0, 0, w, h);
    let s = 0, s2 = 0, lag = 0, cross = 0, tail = 0;
    for (let i = 0; i < n.length; i++) { s += n[i]; s2 += n[i] * n[i]; if (Math.abs(n[i]) > 3) tail++; }
    const N = n.length;
    for (let i = 0; i < w * h - 1; i++) { lag += n[i] * n[i + 1]; cross += n[i] * n[i + w * h]; }
    assert.ok(Math.abs(s / N) < 0.01, `mean ${s / N}`);
    assert.ok(Math.abs(s2 / N - 1) < 0.02, `variance ${s2 / N}`);
    assert.ok(Math.abs(lag / (w * h)) < 0.02, `lag-1 correlation ${lag / (w * h)}`);
    assert.ok(Math.abs(cross / (w * h)) < 0.02, `channel correlation ${cross / (w * h)}`);
    // P(|z| > 3) = 0.0027
    assert.ok(Math.abs(tail / N - 0.0027) < 0.0008, `tail ${tail / N}`);
  });
});
