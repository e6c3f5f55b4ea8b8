"""Several processes through torchrun (gloo on CPU): the unchanged commands run data-parallel,
only rank 0 speaks on stdout and writes the run folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TRAINER = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, n: int = 6, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 255, (64, 80, 3)).astype(np.uint8)
        Image.fromarray(img).save(folder / f"p{i}.png")
    return folder


def torchrun(args: list, timeout: int = 240) -> tuple[int, list[dict], str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(TRAINER))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "duoscale_trainer", *[str(a) for a in args]]
    p = subprocess.run(cmd, cwd=TRAINER, env=env, capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]   # pure JSON lines
    return p.returncode, events, p.stderr


@pytest.mark.slow
def test_two_process_ddp_teacher_and_student(tmp_path):
    photos = make_photos(tmp_path / "photos")
    t_out = tmp_path / "teacher"
    rc, events, err = torchrun(["teacher", "--preset", "test", "--data", photos, "--out", t_out, "--steps", 4])
    assert rc == 0, err[-3000:]
    assert [e["event"] for e in events].count("started") == 1          # rank 1 is silent
    assert events[0]["world_size"] == 2 and events[-1]["event"] == "finished"
    assert "rank 1" in err                                              # both ranks ran and logged
    ck = torch.load(t_out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 4 and ck["kind"] == "teacher"
    assert not any(k.startswith("module.") for k in ck["models"]["teacher"])   # unwrapped DDP weights

    s_out = tmp_path / "student"
    rc, events, err = torchrun(["student", "--preset", "test", "--data", photos, "--out", s_out, "--steps", 3,
                                "--teacher", t_out / "checkpoints" / "last.pt"])
    assert rc == 0, err[-3000:]
    assert events[-1]["event"] == "finished" and events[-1]["step"] == 3
    seen = set().union(*(e["losses"] for e in events if e["event"] == "progress"))
    assert {"distill", "denoise", "adv_hr", "adv_lr", "d_hr", "d_lr"} <= seen
    assert (s_out / "checkpoints" / "last.pt").is_file()
    assert sorted(p.name for p in s_out.iterdir()) == ["checkpoints", "config.json", "samples"]


def test_step_sampler_shards_by_rank_and_is_a_function_of_the_step():
    from duoscale_trainer.train.common import StepSampler

    n, b = 10, 3
    r0 = StepSampler(n, b, seed=5, rank=0, world=2)
    r1 = StepSampler(n, b, seed=5, rank=1, world=2)
    # the global batch of a step is split without overlap; one epoch covers every index once
    seen = []
    for step in range(3):
        a, c = r0.indices(step), r1.indices(step)
        assert not {i for i, _ in a} & {i for i, _ in c} or any(e for _, e in a + c)
        seen += a + c
    epoch0 = [i for i, e in seen if e == 0]
    assert sorted(epoch0) == list(range(n))
    # a fresh sampler (a resumed process) gives the same batches for the same steps
    again = StepSampler(n, b, seed=5, rank=1, world=2)
    assert [again.indices(s) for s in (7, 2)] == [r1.indices(7), r1.indices(2)]
    assert StepSampler(n, b, seed=6, rank=1, world=2).indices(0) != r1.indices(0)
