"""Helpers shared by the training-loop tests: small photos, the CLI run in-process, and the
repository's scripts/ loaded as modules."""
from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from duoscale_trainer import cli, protocol


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(filename: str):
    """A file of the repository's scripts/ (e.g. "sharpen-check.py") imported as a module."""
    spec = importlib.util.spec_from_file_location(Path(filename).stem.replace("-", "_"), SCRIPTS / filename)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_photos(folder: Path, n: int = 6, seed: int = 0) -> Path:
    """Small textured RGB photos (PNG and JPEG) that give the nets something to learn."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = 72 + 8 * (i % 3), 96
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack([np.sin(x / (3 + i)), np.cos(y / (4 + i)), np.sin((x + y) / (6 + i))], -1) * 0.5 + 0.5
        img = (img * 200 + rng.integers(0, 55, (h, w, 3))).clip(0, 255).astype(np.uint8)
        ext = "png" if i % 2 == 0 else "jpg"
        Image.fromarray(img).save(folder / f"photo{i}.{ext}")
    return folder


def run_raw(argv) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, its stdout protocol text)."""
    buf = io.StringIO()
    old = protocol._out
    protocol._out = buf
    try:
        rc = cli.main([str(a) for a in argv])
    finally:
        protocol._out = old
    return rc, buf.getvalue()


def run_cli(argv: list[str]) -> tuple[int, list[dict]]:
    """Run the CLI in-process; returns (exit code, protocol events)."""
    rc, text = run_raw(argv)
    return rc, [json.loads(line) for line in text.splitlines() if line.strip()]


def losses_of(events: list[dict], key: str) -> list[float]:
    return [e["losses"][key] for e in events if e["event"] == "progress" and key in e.get("losses", {})]
