"""Face mode: the Haar cascade finds the portrait's face, none in a landscape; crops are aligned."""

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from duoscale_trainer.data import faces
from duoscale_trainer.data.dataset import decode_image

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def portrait():
    return decode_image(FIXTURES / "portrait.jpg")          # 205 x 240, Grace Hopper (public domain)


def _landscape(h=240, w=320, seed=0):
    """Sky gradient, sun, layered mountain ridges, a lake with ripples, texture noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[...] = np.stack([0.45 + 0.3 * y / h, 0.6 + 0.25 * y / h, np.full_like(y, 0.95)], axis=-1)
    img[(x - 250) ** 2 + (y - 50) ** 2 < 18 ** 2] = (1.0, 0.95, 0.7)
    for layer, (base, colour) in enumerate([(120, (0.35, 0.4, 0.5)), (150, (0.2, 0.35, 0.2)),
                                            (175, (0.15, 0.25, 0.12))]):
        ridge = base + np.cumsum(rng.normal(0, 2.5, w))
        ridge -= ridge.mean() - base
        img[y > ridge[None, :].repeat(h, 0)] = colour
    lake = y > 200
    img[lake] = np.stack([0.2 + 0.05 * np.sin(x[lake] / 3 + y[lake]), 0.3 + 0 * x[lake],
                          0.5 + 0.05 * np.sin(y[lake] * 2)], axis=-1)
    img += rng.normal(0, 0.03, img.shape)
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_cascade_files_parse():
    c = faces.load_cascade(faces.FACE_CASCADE)
    assert (c.width, c.height, len(c.stages)) == (20, 20, 20)
    e = faces.load_cascade(faces.EYE_CASCADE)
    assert (e.width, e.height) == (20, 20) and len(e.stages) == 24


def test_portrait_face_found(portrait):
    boxes = faces.detect_faces(portrait)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # the face is centred near (106, 86) and about 90 px wide in this 205 x 240 photo
    assert abs(x + w / 2 - 106) < 15 and abs(y + h / 2 - 86) < 15 and 60 < w < 130
    eyes = faces.find_eyes(portrait, boxes[0])
    assert len(eyes) == 2 and abs(faces.eye_angle(eyes)) < 10
    # a mirrored portrait is a face too
    assert len(faces.detect_faces(np.ascontiguousarray(portrait[:, ::-1]))) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_landscape_has_no_face(seed):
    assert faces.detect_faces(_landscape(seed=seed)) == []


def test_align_crop_levels_the_eyes():
    """Two dark dots at a 20 degree slant: after alignment with those eye positions they sit on one row."""
    img = np.full((200, 200, 3), 230, np.uint8)
    cx, cy, half = 100.0, 90.0, 30.0
    a = math.radians(20)
    left = (cx - half * math.cos(a), cy - half * math.sin(a))
    right = (cx + half * math.cos(a), cy + half * math.sin(a))
    for px, py in (left, right):
        cv2.circle(img, (int(round(px)), int(round(py))), 5, (0, 0, 0), -1)
    box = (60, 60, 80, 80)
    crop = faces.align_crop(img, box, size=128, margin=1.6, eyes=[left, right])
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    dark = crop[..., 0] < 100
    ys, xs = np.nonzero(dark)
    left_rows = ys[xs < 64].mean()
    right_rows = ys[xs >= 64].mean()
    assert abs(left_rows - right_rows) < 1.5
    # without eyes (or an implausible roll) the crop is not rotated
    plain = faces.align_crop(img, box, size=128, margin=1.6, eyes=[])
    ys, xs = np.nonzero(plain[..., 0] < 100)
    assert ys[xs >= 64].mean() - ys[xs < 64].mean() > 15


def test_eye_check_rule():
    assert faces.is_face([(1, 1), (5, 1)], hits=6)
    assert not faces.is_face([(1, 1)], hits=12)              # one eye, weak detection: rejected
    assert faces.is_face([(1, 1)], hits=25)                  # one eye, strong detection: kept
    assert not faces.is_face([], hits=100)
    assert faces.is_face([], hits=6, min_eyes=0)


def test_group_boxes():
    hits = [(100, 100, 40, 40), (102, 101, 40, 40), (99, 98, 42, 42), (300, 50, 40, 40)]
    merged = faces.group_boxes(hits, min_neighbors=2)
    assert len(merged) == 1 and merged[0][1] == 3
    assert abs(merged[0][0][0] - 100) <= 1


def test_extract_faces_report_and_cli(tmp_path, portrait, capsys):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "portrait.png"), portrait[..., ::-1])
    cv2.imwrite(str(src / "landscape.png"), _landscape()[..., ::-1])
    (src / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "out"
    rep = faces.extract_faces(src, out, size=96)
    assert rep["images"] == 3 and rep["faces_found"] == 1 and rep["faces_kept"] == 1
    assert rep["detections"] >= 1 and rep["rejected"]["no_eyes"] == rep["detections"] - 1
    kept = [d for d in rep["details"] if d["result"] == "kept"]
    assert len(kept) == 1 and kept[0]["eyes"] == 2 and kept[0]["image"].endswith("portrait.png")
    assert rep["images_with_faces"] == 1 and rep["aligned"] == 1
    assert len(rep["errors"]) == 1 and "broken.jpg" in rep["errors"][0]
    crop = cv2.imread(rep["outputs"][0])
    assert crop.shape == (96, 96, 3)
    # asking for crops larger than the native face rejects it instead of upscaling
    only = tmp_path / "only"
    only.mkdir()
    (only / "portrait.png").write_bytes((src / "portrait.png").read_bytes())
    rep_big = faces.extract_faces(only, tmp_path / "big", size=256)
    assert rep_big["faces_kept"] == 0 and rep_big["rejected"]["too_small"] == 1

    parser = argparse.ArgumentParser()
    faces.add_arguments(parser)
    args = parser.parse_args([str(only), "--out", str(tmp_path / "cli"), "--size", "64"])
    assert faces.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["faces_kept"] == 1
