#!/usr/bin/env python3
"""Measures how far a change to one LR pixel reaches in an exported model's output, to choose the
tile overlap written into its manifest (`export --overlap`).

    python3 scripts/measure-receptive-field.py resources/models/duoscale-general-x4.onnx [--size 160]

Runs the ONNX model with onnxruntime on a smooth random LR image of SIZE x SIZE, then again with
the centre LR pixel changed by +0.25 (same noise), and prints, for each threshold in 0-255 output
levels, the largest distance (in LR pixels, Chebyshev) from the changed pixel at which the output
changed by more than that threshold. The app cross-fades tiles over the middle half of the
overlap, so an overlap of about twice the 1/4-level radius keeps tiled output within a fraction of
a level of the whole-image output (app/inference/run.test.ts checks the fixture model that way).
"""
import argparse
import json

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("onnx")
    p.add_argument("--size", type=int, default=160, help="LR side in pixels (default 160)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    import onnxruntime as ort

    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(a.seed)
    n = a.size
    coarse = rng.random((1, 3, n // 8 + 2, n // 8 + 2)).astype(np.float32)
    lr = np.kron(coarse, np.ones((1, 1, 8, 8), np.float32))[:, :, :n, :n]
    lr = np.clip(lr * 0.8 + 0.1 + rng.normal(0, 0.02, lr.shape), 0, 1).astype(np.float32)
    noise = rng.standard_normal((1, 48, n, n)).astype(np.float32)
    base = sess.run(["hr"], {"lr": lr, "noise": noise})[0]
    c = n // 2
    lr2 = lr.copy()
    lr2[:, :, c, c] = np.clip(lr2[:, :, c, c] + 0.25, 0, 1)
    out = sess.run(["hr"], {"lr": lr2, "noise": noise})[0]
    diff = np.abs(out - base).max(axis=(0, 1)) * 255.0          # HR grid, 0-255 levels
    ys, xs = np.mgrid[0:4 * n, 0:4 * n]
    dist = np.maximum(np.abs(ys // 4 - c), np.abs(xs // 4 - c))  # LR-pixel Chebyshev distance
    res = {}
    for thr in (1e-4, 0.01, 0.25, 1.0):
        hit = dist[diff > thr]
        res[str(thr)] = int(hit.max()) if hit.size else 0
    print(json.dumps({"model": a.onnx, "lr_size": n, "radius_lr_px_by_threshold_levels": res}))


if __name__ == "__main__":
    main()
