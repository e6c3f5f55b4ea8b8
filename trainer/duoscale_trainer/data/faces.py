"""Face mode: find frontal faces with a Haar cascade, level the eyes, crop square face images.

The installed OpenCV (5.x) no longer ships ``CascadeClassifier`` nor ``cv2.data.haarcascades``, so
this module evaluates OpenCV's Haar cascade files itself (numpy, vectorised over all windows of one
pyramid level). The cascades are OpenCV's own trained files, bundled gzip-compressed in
``duoscale_trainer/assets/`` (see assets/SOURCES.md for origin and licence):
  haarcascade_frontalface_alt2.xml  Rainer Lienhart's tree-based 20x20 frontal face detector
  haarcascade_eye.xml               Shameem Hameed's 20x20 eye detector

Evaluation follows the cascade file format: each window is variance-normalised over its inner
(w-2) x (h-2) area, each weak classifier walks its tree (feature value < threshold -> left), a stage
passes when the sum of its leaf values reaches the stage threshold. The image is scanned on a
pyramid (factor 1.1); overlapping hits are clustered and a face needs ``min_neighbors`` supporting
hits. A detection counts as a face when both eyes are found in its upper part (the eye cascade cuts
the face cascade's false positives on rocks, clouds, skin); the crop is rotated so the eyes are level.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "assets"
FACE_CASCADE = "haarcascade_frontalface_alt2.xml.gz"
EYE_CASCADE = "haarcascade_eye.xml.gz"

Box = tuple[int, int, int, int]          # x, y, w, h in pixels of the input image


# ---------------------------------------------------------------------------------------------
# cascade evaluation


@dataclass
class _Stage:
    threshold: float
    node_feature: np.ndarray     # [n_weak, max_nodes] feature index per tree node
    node_threshold: np.ndarray   # [n_weak, max_nodes]
    node_left: np.ndarray        # [n_weak, max_nodes] child: > 0 node, <= 0 leaf -child
    node_right: np.ndarray
    leaves: np.ndarray           # [n_weak, max_leaves]
    features: np.ndarray         # unique feature indices used by this stage
    local: np.ndarray            # node_feature mapped into positions of ``features``
    table: np.ndarray = None     # [n_weak, 2**max_nodes] leaf value for each pattern of node tests
    bit_weights: np.ndarray = None
    table_row: np.ndarray = None
    threshold32: np.ndarray = None

    def __post_init__(self):
        n_weak, mn = self.node_feature.shape
        self.bit_weights = (1 << np.arange(mn)).astype(np.int64)
        self.table = np.zeros((n_weak, 1 << mn))
        for k in range(n_weak):
            for pat in range(1 << mn):
                node = 0
                while True:                          # walk the tree: bit j = "node j test is below"
                    nxt = self.node_left[k, node] if (pat >> node) & 1 else self.node_right[k, node]
                    if nxt <= 0:
                        self.table[k, pat] = self.leaves[k, -nxt]
                        break
                    node = nxt
        self.table_row = np.arange(n_weak, dtype=np.intp) * (1 << mn)
        self.threshold32 = self.node_threshold.astype(np.float32)


class HaarCascade:
    """A boosted Haar cascade read from an OpenCV XML file (new ``opencv-cascade-classifier`` format)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            root = ET.fromstring(raw)
        except (OSError, ET.ParseError, gzip.BadGzipFile) as e:
            raise ValueError(f"{path}: cannot read cascade file ({e})") from e
        casc = root.find("cascade")
        if casc is None or casc.findtext("featureType", "").strip() != "HAAR":
            raise ValueError(f"{path}: not an OpenCV Haar cascade in the new XML format")
        self.name = path.name
        self.width = int(casc.findtext("width"))
        self.height = int(casc.findtext("height"))
        # features: up to 3 rects (x, y, w, h, weight)
        feats = []
        for f in casc.find("features"):
            if (f.findtext("tilted") or "0").strip() not in ("0", ""):
                raise ValueError(f"{path}: tilted Haar features are not supported")
            rects = [[float(v) for v in r.text.split()] for r in f.find("rects")]
            rects += [[0, 0, 0, 0, 0.0]] * (3 - len(rects))
            feats.append(rects[:3])
        self.rects = np.array(feats, dtype=np.float64)               # [F, 3, 5]
        self.stages: list[_Stage] = []
        for st in casc.find("stages"):
            weak_nodes, weak_leaves = [], []
            for wk in st.find("weakClassifiers"):
                vals = wk.findtext("internalNodes").split()
                nodes = [(int(vals[i]), int(vals[i + 1]), int(vals[i + 2]), float(vals[i + 3]))
                         for i in range(0, len(vals), 4)]
                weak_nodes.append(nodes)
                weak_leaves.append([float(v) for v in wk.findtext("leafValues").split()])
            n = len(weak_nodes)
            mn = max(len(x) for x in weak_nodes)
            ml = max(len(x) for x in weak_leaves)
            nf = np.zeros((n, mn), np.int64)
            nt = np.zeros((n, mn), np.float64)
            nl = np.zeros((n, mn), np.int64)
            nr = np.zeros((n, mn), np.int64)
            lv = np.zeros((n, ml), np.float64)
            for i, (nodes, leaves) in enumerate(zip(weak_nodes, weak_leaves)):
                for j, (left, right, fi, thr) in enumerate(nodes):
                    nl[i, j], nr[i, j], nf[i, j], nt[i, j] = left, right, fi, thr
                lv[i, :len(leaves)] = leaves
            uniq, local = np.unique(nf, return_inverse=True)
            self.stages.append(_Stage(float(st.findtext("stageThreshold")), nf, nt, nl, nr, lv,
                                      uniq, local.reshape(nf.shape)))
        self.max_depth = max(s.node_feature.shape[1] for s in self.stages)

    def _feature_offsets(self, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Per feature: 12 flat offsets into the integral image (3 rects x 4 corners), and 12 signed
        weights (+w, -w, -w, +w per rect)."""
        x, y, w, h, wt = (self.rects[..., i] for i in range(5))
        corners = [(y, x, 1.0), (y, x + w, -1.0), (y + h, x, -1.0), (y + h, x + w, 1.0)]
        offs = np.stack([(cy * stride + cx) for cy, cx, _ in corners], axis=-1)   # [F, 3, 4]
        sign = np.stack([wt * s for _, _, s in corners], axis=-1)
        return offs.reshape(len(self.rects), 12).astype(np.int64), sign.reshape(len(self.rects), 12)

    def evaluate(self, gray: np.ndarray, step: int = 1) -> np.ndarray:
        """Scan every window position (stride ``step``) of one 8-bit/float gray image at its own scale.
        Returns an int array [K, 2] of accepted (x, y) window corners."""
        h, w = gray.shape
        if h < self.height or w < self.width:
            return np.zeros((0, 2), np.int64)
        g = gray.astype(np.float64)
        ii = np.zeros((h + 1, w + 1)); ii[1:, 1:] = g.cumsum(0).cumsum(1)
        sq = np.zeros((h + 1, w + 1)); sq[1:, 1:] = (g * g).cumsum(0).cumsum(1)
        stride = w + 1
        flat, flat_sq = ii.ravel(), sq.ravel()
        ys = np.arange(0, h - self.height + 1, step)
        xs = np.arange(0, w - self.width + 1, step)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        base = (yy * stride + xx).ravel()
        # variance normalisation over the inner window (1 pixel margin), as OpenCV's normrect
        nw, nh = self.width - 2, self.height - 2
        c = [(1 * stride + 1), (1 * stride + 1 + nw), ((1 + nh) * stride + 1), ((1 + nh) * stride + 1 + nw)]

        def rect_sum(arr, b):
            return arr[b + c[3]] - arr[b + c[1]] - arr[b + c[2]] + arr[b + c[0]]

        area = float(nw * nh)
        s1, s2 = rect_sum(flat, base), rect_sum(flat_sq, base)
        nf = area * s2 - s1 * s1
        nf = np.where(nf > 0, np.sqrt(np.maximum(nf, 0)), 1.0)
        inv = 1.0 / nf
        offs, sign = self._feature_offsets(stride)
        alive = np.arange(base.size)
        for st in self.stages:
            if alive.size == 0:
                break
            b = base[alive]
            # feature values of this stage's features for all alive windows, chunked for memory
            if alive.size > 0.3 * base.size:
                # most windows still alive: strided slices of the integral image (no gathers)
                vals = np.empty((base.size, st.features.size))
                for j, fi in enumerate(st.features):
                    acc = np.zeros((len(ys), len(xs)))
                    for rx, ry, rw, rh, wt in self.rects[fi]:
                        if wt == 0.0:
                            continue
                        rx, ry, rw, rh = int(rx), int(ry), int(rw), int(rh)

                        def at(oy, ox):
                            return ii[oy:oy + step * len(ys):step, ox:ox + step * len(xs):step]

                        acc += wt * (at(ry + rh, rx + rw) - at(ry, rx + rw) - at(ry + rh, rx) + at(ry, rx))
                    vals[:, j] = acc.ravel()
                vals = vals[alive]
            else:
                fo, fs = offs[st.features], sign[st.features]
                vals = np.empty((b.size, st.features.size))
                chunk = max(1, 4_000_000 // (12 * st.features.size))
                for lo in range(0, b.size, chunk):
                    bb = b[lo:lo + chunk]
                    vals[lo:lo + chunk] = np.einsum("nfk,fk->nf", flat[bb[:, None, None] + fo[None]], fs)
            vals = (vals * inv[alive][:, None]).astype(np.float32)        # float32 like OpenCV
            # all weak classifiers at once: the comparison bits of a tree's nodes index its leaf table
            below = vals[:, st.local] < st.threshold32[None]               # [N, n_weak, max_nodes]
            pattern = np.zeros(below.shape[:2], np.intp)
            for j in range(below.shape[2]):
                pattern |= below[..., j].view(np.uint8).astype(np.intp) << j
            pattern += st.table_row[None, :]
            total = st.table.ravel().take(pattern).sum(axis=1)
            alive = alive[total >= st.threshold]
        return np.stack([xx.ravel()[alive], yy.ravel()[alive]], axis=1)

    def detect(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3,
               min_size: int | None = None, max_size: int | None = None) -> list[tuple[Box, int]]:
        """Multi-scale detection on a 2-D gray image; returns [(box, neighbours)], biggest first."""
        h, w = gray.shape
        min_size = max(min_size or self.width, self.width)
        max_size = max_size or min(h, w)
        raw: list[Box] = []
        factor = 1.0
        while True:
            ww, wh = self.width * factor, self.height * factor
            if ww > w or wh > h or ww > max_size:
                break
            if ww >= min_size:
                sw, sh = int(round(w / factor)), int(round(h / factor))
                small = gray if factor == 1.0 else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR)
                step = 1 if factor > 2.0 else 2
                for x, y in self.evaluate(small, step):
                    raw.append((int(round(x * factor)), int(round(y * factor)), int(round(ww)), int(round(wh))))
            factor *= scale_factor
        return group_boxes(raw, min_neighbors)


def group_boxes(boxes: list[Box], min_neighbors: int, eps: float = 0.2) -> list[tuple[Box, int]]:
    """Cluster near-identical hits (connected components of a corner-distance test), average each
    cluster, keep clusters with more than ``min_neighbors`` members, then drop clusters nested in a
    stronger one."""
    n = len(boxes)
    if n == 0:
        return []
    b = np.asarray(boxes, dtype=np.float64)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    delta = eps * (np.minimum(b[:, None, 2], b[None, :, 2]) + np.minimum(b[:, None, 3], b[None, :, 3])) * 0.5
    near = ((np.abs(x0[:, None] - x0[None]) <= delta) & (np.abs(y0[:, None] - y0[None]) <= delta)
            & (np.abs(x1[:, None] - x1[None]) <= delta) & (np.abs(y1[:, None] - y1[None]) <= delta))
    label = np.arange(n)
    while True:                                   # propagate the smallest label through neighbours
        new = np.where(near, label[None, :], n).min(axis=1)
        new = np.minimum(new, label)
        if np.array_equal(new, label):
            break
        label = new
    merged = []
    for lab in np.unique(label):
        members = b[label == lab]
        if len(members) <= min_neighbors:
            continue
        merged.append((tuple(int(round(v)) for v in members.mean(axis=0)), len(members)))
    merged.sort(key=lambda t: (-t[1], -t[0][2]))
    kept: list[tuple[Box, int]] = []
    for box, cnt in merged:
        if any(_inside(box, k[0]) for k in kept):
            continue
        kept.append((box, cnt))
    kept.sort(key=lambda t: -t[0][2])
    return kept


def _inside(a: Box, b: Box) -> bool:
    """Is most of ``a`` inside ``b`` (intersection >= 60 % of a's area)?"""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy >= 0.6 * a[2] * a[3]


@lru_cache(maxsize=4)
def load_cascade(name: str) -> HaarCascade:
    return HaarCascade(ASSETS / name)


# ---------------------------------------------------------------------------------------------
# faces and eyes


def _gray(img_rgb: np.ndarray) -> np.ndarray:
    if img_rgb.ndim == 2:
        g = img_rgb
    else:
        g = cv2.cvtColor(np.ascontiguousarray(img_rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    if g.dtype != np.uint8:
        g = np.round(np.clip(g.astype(np.float32) * (255.0 if g.dtype.kind == "f" else 1.0), 0, 255)).astype(np.uint8)
    return cv2.equalizeHist(g)


def find_eyes(img_rgb: np.ndarray, box: Box) -> list[tuple[float, float]]:
    """Eye centres (x, y) in image pixels for a face box: at most one per half of the face (image-left
    first), searched in the band 15..60 % of the box height. Empty when no eye is found.

    The eye cascade is run at a face width of 160 px on two versions of the face (raw luma, and luma
    equalised over a 3x larger neighbourhood): each alone misses eyes that the other finds.
    """
    x, y, w, h = (int(v) for v in box)
    H, W = img_rgb.shape[:2]
    gray = img_rgb if img_rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img_rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    if gray.dtype != np.uint8:
        gray = _gray(gray) if gray.dtype.kind == "f" else np.round(gray / 257.0).astype(np.uint8)
    nx0, ny0 = max(0, x - w), max(0, y - h)
    nx1, ny1 = min(W, x + 2 * w), min(H, y + 2 * h)
    hood = gray[ny0:ny1, nx0:nx1]
    if hood.size == 0:
        return []
    eq = cv2.equalizeHist(np.ascontiguousarray(hood))
    fx0, fy0 = x - nx0, y - ny0
    f = 160.0 / max(w, 1)
    best: dict[int, tuple[float, float, int]] = {}
    cascade = load_cascade(EYE_CASCADE)
    band0, band1 = int(0.08 * h), int(0.68 * h)               # rows of the face box searched
    for version in (hood, eq):
        if len(best) == 2:
            break                                   # both eyes found on the raw version
        face = np.ascontiguousarray(version[max(0, fy0 + band0):fy0 + band1, max(0, fx0):fx0 + w])
        if face.size == 0:
            continue
        size = (max(1, int(round(face.shape[1] * f))), max(1, int(round(face.shape[0] * f))))
        face = cv2.resize(face, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        for (ex, ey, ew, eh), cnt in cascade.detect(face, 1.1, 1, min_size=19, max_size=72):
            cx, cy = (ex + ew / 2) / f, (ey + eh / 2) / f + band0  # in face-box pixels
            if not (0.15 * h <= cy <= 0.6 * h and 0.12 * w <= cx <= 0.88 * w):
                continue
            side = 0 if cx < w / 2 else 1
            if side not in best or cnt > best[side][2]:
                best[side] = (cx + x, cy + y, cnt)
    eyes = [(best[s][0], best[s][1]) for s in sorted(best)]
    if len(eyes) == 2 and not 0.2 * w <= math.dist(*eyes) <= 0.7 * w:
        eyes = [max(best.values(), key=lambda e: e[2])[:2]]      # implausible pair: keep the stronger
    return eyes


def face_candidates(img_rgb: np.ndarray, min_size: int = 24, min_neighbors: int = 5,
                    max_side: int = 1024) -> list[tuple[Box, int]]:
    """Raw cascade detections [(box, neighbours)], biggest first, before any eye check.

    Large photos are scanned on a reduced copy: long side <= ``max_side`` and the smallest wanted face
    about 40 px (2x the 20 px cascade window), so a large ``min_size`` makes the scan much cheaper.
    Boxes are in the input's pixels.
    """
    if img_rgb.ndim not in (2, 3):
        raise ValueError(f"expected an image array, got shape {img_rgb.shape}")
    gray = _gray(img_rgb)
    h, w = gray.shape
    f = min(1.0, max_side / max(h, w), 40.0 / max(min_size, 1))
    if f < 1.0:
        gray = cv2.resize(gray, (int(round(w * f)), int(round(h * f))), interpolation=cv2.INTER_AREA)
    found = load_cascade(FACE_CASCADE).detect(gray, 1.1, min_neighbors, min_size=max(20, int(min_size * f)))
    return [(tuple(int(round(v / f)) for v in b), n) for b, n in found]


def is_face(eyes: list, hits: int, min_eyes: int = 2, strong_hits: int = 20) -> bool:
    """The eye check: ``min_eyes`` eyes found, or one eye on a detection with ``strong_hits`` or more
    cascade hits (the eye cascade misses eyes behind glasses or in shade on clear faces)."""
    return len(eyes) >= min_eyes or (len(eyes) >= 1 and hits >= strong_hits)


def detect_faces(img_rgb: np.ndarray, min_size: int = 24, min_neighbors: int = 5, min_eyes: int = 2,
                 max_side: int = 1024, strong_hits: int = 20) -> list[Box]:
    """Frontal faces in an RGB (or gray) uint8 image, as (x, y, w, h) boxes, biggest first.

    A detection counts as a face when it has more than ``min_neighbors`` overlapping cascade hits and
    passes ``is_face``: ``min_eyes`` eyes found by ``find_eyes``, or one eye and ``strong_hits`` hits.
    Defaults measured on our photo pool (166 photos + 15 face crops): every false detection (rocks,
    clouds, an arm, blinds, game textures) had at most 5 hits or fewer than two eyes and under 13
    hits; real faces of usable size had two eyes, or one eye and 25+ hits.
    """
    return [b for b, hits in face_candidates(img_rgb, min_size, min_neighbors, max_side)
            if is_face(find_eyes(img_rgb, b), hits, min_eyes, strong_hits)]


def eye_angle(eyes: list[tuple[float, float]]) -> float | None:
    """Roll angle in degrees (positive = right eye lower in the image) from two eye centres, or None."""
    if len(eyes) != 2:
        return None
    (x1, y1), (x2, y2) = eyes
    return math.degrees(math.atan2(y2 - y1, x2 - x1))


def align_crop(img: np.ndarray, box: Box, size: int = 256, margin: float = 1.6,
               eyes: list[tuple[float, float]] | None = None, max_roll: float = 30.0) -> np.ndarray:
    """Square crop around a face box, rotated so the eyes are level, resized to size x size.

    The crop side is ``margin`` x the box side (hair and chin included), centred on the box centre.
    ``eyes`` defaults to ``find_eyes``; with fewer than two eyes or a roll above ``max_roll`` degrees
    the crop is not rotated. Pixels outside the photo replicate its border. Downscaling uses the
    antialiased bicubic of resize.py; works on uint8 or float images, returns the same dtype.
    """
    from .resize import imresize

    x, y, w, h = box
    if eyes is None:
        eyes = find_eyes(img, box)
    angle = eye_angle(eyes)
    if angle is None or abs(angle) > max_roll:
        angle = 0.0
    cx, cy = x + w / 2.0, y + h / 2.0
    side = max(1, int(round(margin * max(w, h))))
    # output pixel (u, v) -> source: rotate by `angle` about the face centre
    rot = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    rot[:, 2] += np.array([side / 2.0 - cx, side / 2.0 - cy])
    src = img if img.dtype in (np.uint8, np.float32) else img.astype(np.float32)
    crop = cv2.warpAffine(src, rot, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if side == size:
        return crop
    out = imresize(crop.astype(np.float32), out_shape=(size, size))
    if img.dtype == np.uint8:
        return np.round(np.clip(out, 0, 255)).astype(np.uint8)
    return out.astype(img.dtype)


def _outside_fraction(shape, box: Box, margin: float) -> float:
    """Fraction of the (unrotated) crop square that falls outside the photo."""
    h, w = shape[:2]
    x, y, bw, bh = box
    side = margin * max(bw, bh)
    cx, cy = x + bw / 2.0, y + bh / 2.0
    x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    inside = max(0.0, min(x1, w) - max(x0, 0)) * max(0.0, min(y1, h) - max(y0, 0))
    return 1.0 - inside / (side * side)


def extract_faces(folder, out_folder, size: int = 256, margin: float = 1.6, min_neighbors: int = 5,
                  max_outside: float = 0.2, allow_upscale: bool = False, min_eyes: int = 2,
                  strong_hits: int = 20) -> dict:
    """Find faces in every photo of ``folder`` and write aligned size x size PNG crops to ``out_folder``.

    Each cascade detection is rejected when it fails the eye check of ``is_face`` ("no_eyes", mostly
    false detections), when its crop would need upscaling (native crop side < ``size``, unless
    ``allow_upscale``: "too_small"), or when more than ``max_outside`` of the crop lies outside the
    photo ("at_edge"). Returns a JSON-ready report: images, detections, faces_found (passed the eye
    check), faces_kept, rejected by reason, aligned (eyes levelled), unreadable files, written paths,
    and one "details" entry per detection (image, box, hits, eyes found, result).
    """
    from .dataset import ImageError, decode_image, list_images
    from .degrade import write_png_atomic

    paths = list_images(folder)
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    report = {"images": len(paths), "images_with_faces": 0, "detections": 0, "faces_found": 0,
              "faces_kept": 0, "rejected": {"no_eyes": 0, "too_small": 0, "at_edge": 0}, "aligned": 0,
              "size": size, "errors": [], "outputs": [], "details": []}
    min_face = 1 if allow_upscale else int(math.ceil(size / margin))
    for path in paths:
        try:
            native = decode_image(path)
        except ImageError as e:
            report["errors"].append(str(e))
            continue
        img8 = native if native.dtype == np.uint8 else np.round(native / 257.0).astype(np.uint8)
        # faces down to half the usable size are detected (and reported as too small)
        cands = face_candidates(img8, min_size=max(24, min_face // 2), min_neighbors=min_neighbors)
        report["detections"] += len(cands)
        kept_here = 0
        for k, (box, hits) in enumerate(cands):
            eyes = find_eyes(img8, box)
            detail = {"image": str(path), "box": list(box), "hits": hits, "eyes": len(eyes)}
            report["details"].append(detail)
            if not is_face(eyes, hits, min_eyes, strong_hits):
                report["rejected"]["no_eyes"] += 1
                detail["result"] = "no_eyes"
                continue
            report["faces_found"] += 1
            if max(box[2], box[3]) < min_face:
                report["rejected"]["too_small"] += 1
                detail["result"] = "too_small"
                continue
            if _outside_fraction(native.shape, box, margin) > max_outside:
                report["rejected"]["at_edge"] += 1
                detail["result"] = "at_edge"
                continue
            detail["result"] = "kept"
            angle = eye_angle(eyes)
            if angle is not None and abs(angle) <= 30.0:
                report["aligned"] += 1
            crop = align_crop(native, box, size, margin, eyes)
            rel = path.relative_to(folder) if Path(folder) in path.parents else Path(path.name)
            name = "__".join(rel.with_suffix("").parts) + f"_face{k}.png"
            out = out_folder / name
            if crop.dtype == np.uint16:
                crop = np.round(crop / 257.0).astype(np.uint8)
            write_png_atomic(out, crop)
            report["outputs"].append(str(out))
            detail["output"] = str(out)
            kept_here += 1
        report["faces_kept"] += kept_here
        report["images_with_faces"] += int(kept_here > 0)
    return report


# ---------------------------------------------------------------------------------------------
# CLI (`python -m duoscale_trainer faces`)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="folder of photos (searched recursively)")
    parser.add_argument("--out", "-o", required=True, help="folder for the aligned face crops (PNG)")
    parser.add_argument("--size", type=int, default=256, help="side of the square crops (default %(default)s)")
    parser.add_argument("--margin", type=float, default=1.6, help="crop side / detected face side")
    parser.add_argument("--min-neighbors", type=int, default=5,
                        help="a face needs more than this many overlapping detector hits")
    parser.add_argument("--allow-upscale", action="store_true",
                        help="keep faces smaller than --size (they are enlarged; not HR ground truth)")
    parser.add_argument("--min-eyes", type=int, default=2, choices=[0, 1, 2],
                        help="eyes that must be found in a detection for it to count as a face")
    parser.add_argument("--strong-hits", type=int, default=20,
                        help="detections with this many hits need only one eye")


def run(args: argparse.Namespace) -> int:
    report = extract_faces(args.input, args.out, size=args.size, margin=args.margin,
                           min_neighbors=args.min_neighbors, allow_upscale=args.allow_upscale,
                           min_eyes=args.min_eyes, strong_hits=args.strong_hits)
    print(json.dumps(report))
    return 0
