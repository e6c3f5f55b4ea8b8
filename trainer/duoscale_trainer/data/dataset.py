"""Photo folders -> (HR, LR) training pairs.

Photos of any size and format (JPEG, PNG incl. 16-bit, WebP, TIFF, grayscale, alpha) are decoded
lazily at native resolution and kept in a per-process LRU cache bounded in bytes (native pixels:
an SR model must see real camera detail, so nothing is downscaled on load).

Every random choice of ``PairDataset.__getitem__(i)`` comes from a generator seeded with
(seed, epoch, i): the same item in the same epoch is the same pair on any worker, and a resumed run
that calls ``set_epoch(epoch)`` sees exactly the batches it would have seen.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .degrade import MIXED_BICUBIC_PROB, DegradeConfig, make_lr, pick_degradation
from .resize import imresize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")


class ImageError(ValueError):
    """A photo could not be read; the message names the file and what to do."""


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Sorted image paths (jpg/jpeg/png/webp/tif/tiff, any case) under ``folder``; hidden files and
    folders are skipped. Raises ``FileNotFoundError``/``ImageError`` with the folder name when there
    is nothing to use."""
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root}: folder does not exist")
    if not root.is_dir():
        raise ImageError(f"{root}: not a folder (give a folder of photos)")
    walker = root.rglob("*") if recursive else root.glob("*")
    found = []
    for p in walker:
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            found.append(p)
    if not found:
        raise ImageError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)}"
                         f"{' in subfolders too' if recursive else ''})")
    return sorted(found)


def _resolve_paths(folder_or_paths) -> list[Path]:
    if isinstance(folder_or_paths, (str, os.PathLike)):
        p = Path(folder_or_paths)
        return list_images(p) if p.is_dir() else [p]
    paths = [Path(p) for p in folder_or_paths]
    if not paths:
        raise ImageError("empty list of images")
    return paths


# ---------------------------------------------------------------------------------------------
# decoding


def _exif_orientation(path: Path) -> int:
    try:
        from PIL import Image
        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    # EXIF orientation tags 2..8 as flips / rotations of the stored pixels
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    elif orientation == 5:
        img = np.swapaxes(img, 0, 1)
    elif orientation == 6:
        img = np.rot90(img, -1)
    elif orientation == 7:
        img = np.swapaxes(img[::-1, ::-1], 0, 1)     # transverse
    elif orientation == 8:
        img = np.rot90(img, 1)
    return np.ascontiguousarray(img)


def _decode_pil(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.uint16 if im.mode.startswith("I;16") else np.int32)
            if arr.dtype == np.int32:
                arr = np.clip(arr, 0, 65535).astype(np.uint16)
            return arr
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            return np.asarray(im.convert("RGBA"))
        return np.asarray(im.convert("RGB"))


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Decode to an HxWx3 RGB array at native resolution, dtype uint8 or uint16 (16-bit sources).

    Grayscale is replicated to 3 channels; alpha is composited over white; EXIF orientation is
    applied. Raises ``ImageError`` naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read file ({e.strerror or e})") from e
    if data.size == 0:
        raise ImageError(f"{path}: file is empty; remove it from the folder")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    bgr = True
    if img is not None:
        img = _apply_orientation(img, _exif_orientation(path))
    else:
        try:
            img = _decode_pil(path)
            bgr = False
        except Exception as e:
            raise ImageError(f"{path}: not a readable image ({type(e).__name__}: {e}); "
                             "re-save it as PNG/JPEG or remove it from the folder") from e
    if img.dtype == np.float32 or img.dtype == np.float64:
        img = np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    elif img.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: unsupported sample type {img.dtype}; save it as 8- or 16-bit")
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[2]
    if c == 1:
        rgb = np.repeat(img, 3, axis=2)
    elif c == 2:                                    # gray + alpha
        rgb = _composite(np.repeat(img[..., :1], 3, axis=2), img[..., 1:2])
    elif c == 3:
        rgb = img[..., ::-1] if bgr else img
    elif c == 4:
        color = img[..., 2::-1] if bgr else img[..., :3]
        rgb = _composite(color, img[..., 3:4])
    else:
        raise ImageError(f"{path}: {c} channels are not supported; save it as RGB")
    if min(rgb.shape[:2]) < 1:
        raise ImageError(f"{path}: image has no pixels")
    return np.ascontiguousarray(rgb)


def _composite(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha over white, in the source's integer type."""
    top = 65535.0 if color.dtype == np.uint16 else 255.0
    a = alpha.astype(np.float32) / top
    out = color.astype(np.float32) * a + top * (1.0 - a)
    return np.round(out).astype(color.dtype)


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0,1]."""
    top = 65535.0 if img.dtype == np.uint16 else 255.0
    return img.astype(np.float32) / top


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode a photo to float32 HxWx3 RGB in [0,1] (see ``decode_image``)."""
    return to_float(decode_image(path))


class ImageCache:
    """LRU cache of decoded native-resolution photos, bounded by total bytes."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, path: Path) -> np.ndarray:
        key = str(path)
        img = self._items.get(key)
        if img is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return img
        self.misses += 1
        img = decode_image(path)
        img.setflags(write=False)
        self._items[key] = img
        self.bytes += img.nbytes
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.nbytes
        return img

    def __len__(self) -> int:
        return len(self._items)


# ---------------------------------------------------------------------------------------------
# crops and augmentation


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random size x size window; images smaller than ``size`` are reflect-padded first."""
    h, w = img.shape[:2]
    if h < size or w < size:
        img = _pad_to(img, size)
        h, w = img.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return img[y:y + size, x:x + size]


def _pad_to(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    mode = "reflect" if (h > 1 and w > 1 and ph < h and pw < w) else "edge"
    return np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode=mode)


def augment(img: np.ndarray, rng: np.random.Generator, flips: str) -> np.ndarray:
    """``h``: horizontal flip p=0.5; ``dihedral``: also vertical flip and transpose (8 orientations);
    ``none``. Three draws are always made so the stream of draws does not depend on ``flips``."""
    a, b, c = rng.uniform(size=3)
    if flips == "none":
        return img
    if a < 0.5:
        img = img[:, ::-1]
    if flips == "dihedral":
        if b < 0.5:
            img = img[::-1]
        if c < 0.5:
            img = np.swapaxes(img, 0, 1)
    elif flips != "h":
        raise ValueError(f"flips must be none, h or dihedral, not {flips!r}")
    return img


def face_square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre square of an (aligned) face crop, resized with antialiased bicubic to size x size."""
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    sq = img[y:y + s, x:x + s]
    if s == size:
        return sq
    return np.clip(imresize(sq, out_shape=(size, size)), 0.0, 1.0)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 float [0,1] -> 3xHxW float32 in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)) * 2.0 - 1.0


# ---------------------------------------------------------------------------------------------
# datasets


class PairDataset(Dataset):
    """Random (HR, LR) pairs from a folder (or list) of photos.

    Item i uses photo i % n_photos, a random hr_size crop at native resolution (reflect-padded if the
    photo is smaller), random flips, and the chosen degradation. With ``faces=True`` the photos are
    taken to be aligned face crops (output of ``faces`` / ``extract_faces``): the whole centre square
    is resized to hr_size and only horizontal flips are used.

    Returns {"hr": 3 x hr_size x hr_size, "lr": 3 x hr_size/scale x hr_size/scale}, float32 in [-1,1].
    Deterministic in (seed, epoch, i); call ``set_epoch`` at the start of each epoch (before the
    DataLoader creates its iterator, so workers receive the new epoch).
    """

    def __init__(self, folder_or_paths, hr_size: int = 64, scale: int = 4, degradation: str = "realesrgan",
                 seed: int = 0, length: int | None = None, faces: bool = False,
                 cfg: DegradeConfig | None = None, flips: str | None = None, cache_mb: int = 1024,
                 bicubic_share: float = MIXED_BICUBIC_PROB):
        if hr_size % scale:
            raise ValueError(f"hr_size {hr_size} must be a multiple of scale {scale}")
        if degradation not in ("realesrgan", "bicubic", "mixed"):
            raise ValueError(f"degradation must be realesrgan, bicubic or mixed, not {degradation!r}")
        self.paths = _resolve_paths(folder_or_paths)
        self.hr_size, self.scale, self.degradation = int(hr_size), int(scale), degradation
        self.seed, self.faces = int(seed), bool(faces)
        self.bicubic_share = float(bicubic_share)
        self.length = int(length) if length is not None else len(self.paths)
        if cfg is None and degradation in ("realesrgan", "mixed"):
            cfg = DegradeConfig.for_hr_size(hr_size)
        self.cfg = cfg
        self.flips = flips or ("h" if faces else "dihedral")
        self.cache = ImageCache(cache_mb << 20)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(hr, lr) as float32 HxWx3 numpy arrays in [0,1]."""
        hr, lr, _ = self._pair(index, epoch)
        return hr, lr

    def _pair(self, index: int, epoch: int | None) -> tuple[np.ndarray, np.ndarray, str]:
        """(hr, lr, the degradation the pair got)."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch, index])
        path = self.paths[index % len(self.paths)]
        native = self.cache.get(path)
        if self.faces:
            hr = face_square(to_float(native), self.hr_size)
        else:
            hr = to_float(random_crop(native, self.hr_size, rng))
        hr = np.ascontiguousarray(augment(hr, rng, self.flips))
        deg_rng = self._degradation_rng(index, epoch)
        kind = pick_degradation(self.degradation, deg_rng, self.bicubic_share)
        lr = make_lr(hr, kind, deg_rng, self.scale, self.cfg)
        return hr, lr, kind

    def _degradation_rng(self, index: int, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, index, 1])

    def is_real(self, index: int, epoch: int | None = None) -> bool:
        """Whether item ``index`` of ``epoch`` got the Real-ESRGAN pipeline (not bicubic-only).

        One random draw, no image work: the same draw ``sample`` makes first."""
        epoch = self.epoch if epoch is None else int(epoch)
        kind = pick_degradation(self.degradation, self._degradation_rng(index, epoch), self.bicubic_share)
        return kind == "realesrgan"

    def get(self, index: int, epoch: int) -> dict:
        """Item ``index`` of epoch ``epoch`` without touching ``self.epoch`` (stateless access).

        "real" is 1.0 for a Real-ESRGAN pair and 0.0 for a bicubic-only one."""
        hr, lr, kind = self._pair(index, epoch)
        return {"hr": to_tensor(hr), "lr": to_tensor(lr),
                "real": torch.tensor(1.0 if kind == "realesrgan" else 0.0)}

    def __getitem__(self, index: int) -> dict:
        return self.get(index, self.epoch)


class FixedPairs(Dataset):
    """Deterministic validation pairs: centre crop(s) of each photo, degraded with a fixed seed.

    ``crops_per_image`` > 1 adds crops on a regular grid (centre first). All pairs are made once in the
    constructor; items also carry "name" (file stem + crop number).
    """

    def __init__(self, folder_or_paths, hr_size: int = 64, scale: int = 4, degradation: str = "realesrgan",
                 seed: int = 1234, crops_per_image: int = 1, limit: int | None = None, faces: bool = False,
                 cfg: DegradeConfig | None = None):
        if hr_size % scale:
            raise ValueError(f"hr_size {hr_size} must be a multiple of scale {scale}")
        self.paths = _resolve_paths(folder_or_paths)
        if cfg is None and degradation in ("realesrgan", "mixed"):
            cfg = DegradeConfig.for_hr_size(hr_size)
        self.hr_size, self.scale, self.degradation, self.seed = hr_size, scale, degradation, seed
        self.hr: list[np.ndarray] = []
        self.lr: list[np.ndarray] = []
        self.names: list[str] = []
        for pi, path in enumerate(self.paths):
            img = load_image(path)
            crops = [face_square(img, hr_size)] if faces else _grid_crops(img, hr_size, crops_per_image)
            for ci, hr in enumerate(crops):
                k = len(self.hr)
                lr = make_lr(hr, degradation, np.random.default_rng([seed, k]), scale, cfg)
                self.hr.append(np.ascontiguousarray(hr))
                self.lr.append(lr)
                self.names.append(f"{path.stem}-{ci}")
                if limit is not None and len(self.hr) >= limit:
                    break
            if limit is not None and len(self.hr) >= limit:
                break

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, index: int) -> dict:
        return {"hr": to_tensor(self.hr[index]), "lr": to_tensor(self.lr[index]), "name": self.names[index]}


def _grid_crops(img: np.ndarray, size: int, count: int) -> list[np.ndarray]:
    h, w = img.shape[:2]
    if h < size or w < size:
        img = _pad_to(img, size)
        h, w = img.shape[:2]
    cy, cx = (h - size) // 2, (w - size) // 2
    spots = [(cy, cx)]
    if count > 1:
        k = int(np.ceil(np.sqrt(count - 1)))
        ys = np.linspace(0, h - size, k + 2)[1:-1] if k > 1 else [0, h - size]
        xs = np.linspace(0, w - size, k + 2)[1:-1] if k > 1 else [0, w - size]
        for y in ys:
            for x in xs:
                spot = (int(round(y)), int(round(x)))
                if spot not in spots:
                    spots.append(spot)
    return [img[y:y + size, x:x + size] for y, x in spots[:count]]
