"""The stdout protocol: every line is one JSON object with a known event; SIGTERM stops a run
at a step boundary with a checkpoint and `finished` (status "stopped"), exit code 0."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from duoscale_trainer import protocol

TRAINER = Path(__file__).resolve().parents[1]


def test_format_event_is_one_json_line_with_clean_numbers():
    line = protocol.format_event("progress", step=3, losses={"mse": float("nan"), "d": torch.tensor(0.5)},
                                 eta_s=math.inf, it_per_s=np.float32(2.0))
    assert "\n" not in line
    d = json.loads(line)
    assert d["event"] == "progress" and d["step"] == 3 and isinstance(d["time"], float)
    assert d["losses"] == {"mse": None, "d": 0.5} and d["eta_s"] is None and d["it_per_s"] == 2.0
    with pytest.raises(ValueError, match="unknown protocol event"):
        protocol.format_event("progres")


def test_disabled_ranks_stay_silent(capsys):
    old = protocol._out
    protocol._out = None
    try:
        protocol.set_enabled(False)
        protocol.emit("started")
        protocol.set_enabled(True)
        protocol.emit("finished", status="completed")
    finally:
        protocol._out = old
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["event"] for x in out] == ["finished"]


def test_sigterm_stops_after_a_checkpoint_and_stdout_is_pure_json(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(photos / f"{i}.png")
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(TRAINER))
    # a library print() must not leak onto the protocol stream
    code = ("import sys\n"
            "from duoscale_trainer import cli\n"
            "from duoscale_trainer.train import common\n"
            "orig = common.write_config\n"
            "def noisy(ctx):\n"
            "    print('stray print')\n"
            "    orig(ctx)\n"
            "common.write_config = noisy\n"
            "raise SystemExit(cli.main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, "teacher", "--preset", "test", "--data", str(photos),
                             "--out", str(out), "--steps", "100000", "--set", "run.checkpoint_every=100000"],
                            cwd=TRAINER, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if json.loads(line).get("event") == "progress" and json.loads(line)["step"] >= 2:
                proc.send_signal(signal.SIGTERM)
                break
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += rest.splitlines(keepends=True)
    assert proc.returncode == 0, err[-2000:]
    events = [json.loads(x) for x in lines]                       # raises on any non-JSON line
    assert all(e["event"] in protocol.EVENTS for e in events)
    assert "stray print" in err
    assert events[0]["event"] == "started"
    assert events[-1]["event"] == "finished" and events[-1]["status"] == "stopped"
    stop_step = events[-1]["step"]
    assert 2 <= stop_step < 100000
    ckpt = [e for e in events if e["event"] == "checkpoint"]
    assert ckpt and ckpt[-1]["step"] == stop_step
    saved = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert saved["step"] == stop_step
