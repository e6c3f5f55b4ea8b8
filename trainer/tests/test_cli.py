"""`python -m duoscale_trainer`: commands, flags -> resolved config, --dry-run, config errors."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from duoscale_trainer import cli, protocol
from duoscale_trainer.config import PRESETS, Config, resolve

from trainhelpers import run_raw

TRAINER = Path(__file__).resolve().parents[1]


def dry(argv) -> dict:
    rc, text = run_raw([*argv, "--dry-run"])
    assert rc == 0, text
    return json.loads(text)


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    cfg = dry(["student", "--preset", "cpu-quick", "--data", tmp_path, "--out", out, "--steps", 50,
               "--no-hr-adv", "--downsampler", "conv", "--gan-loss", "paper", "--sinsr-extra",
               "--cache-targets", 64, "--teacher", "t.pt", "--set", "optim.ema_decay=0.999",
               "--set", "student.r1_gamma=0.5", "--seed", 7])
    assert cfg["command"] == "student" and cfg["preset"] == "cpu-quick"
    assert cfg["run"]["steps"] == 50 and cfg["run"]["minutes"] is None   # --steps beats the preset budget
    assert cfg["run"]["seed"] == 7
    s = cfg["student"]
    assert (s["hr_adv"], s["lr_adv"], s["distill"], s["sinsr_extra"]) == (False, True, True, True)
    assert s["gan_loss"] == "paper" and s["cache_targets"] == 64 and s["r1_gamma"] == 0.5
    assert cfg["model"]["downsampler"] == "conv" and cfg["optim"]["ema_decay"] == 0.999
    assert cfg["paths"]["teacher"] == "t.pt"
    assert not out.exists()
    assert Config.from_dict(cfg).to_dict() == cfg            # the dump round-trips


def test_presets_follow_ml_md():
    gpu = resolve("teacher", "gpu")
    assert (gpu.run.precision, gpu.run.channels_last, gpu.run.tf32, gpu.run.fused_adam) == ("bf16", True, True, True)
    assert gpu.data.hr_size == 256 and gpu.model.unet == "base" and gpu.run.minutes == 3.5
    std = resolve("student", "cpu-standard")
    assert std.data.hr_size == 64 and std.model.unet == "small" and std.data.batch_size == 8
    assert std.student.cache_targets == 2048 and std.optim.ema_decay == 0.995
    quick = resolve("teacher", "cpu-quick")
    assert quick.run.minutes + resolve("student", "cpu-quick").run.minutes <= 10   # README promise
    test = resolve("teacher", "test")
    assert test.data.hr_size == 32 and test.model.unet == "tiny"
    assert set(PRESETS) == {"test", "cpu-quick", "cpu-standard", "gpu"}


def test_minutes_flag_and_learned_codec_flag(tmp_path):
    cfg = dry(["teacher", "--preset", "cpu-standard", "--minutes", 2.5, "--codec-ckpt", "ae.pt"])
    assert cfg["run"]["minutes"] == 2.5
    assert cfg["model"]["codec"] == "learned" and cfg["model"]["codec_ckpt"] == "ae.pt"


@pytest.mark.parametrize("argv,needle", [
    (["--set", "optim.nope=1"], "optim.nope"),
    (["--set", "run.steps=many"], "run.steps"),
    (["--set", "student.gan_loss=wgan"], "gan_loss"),
    (["--hr-size", 30], "hr_size"),
    (["--codec", "learned"], "--codec-ckpt"),
    (["--set", "student.colour_cell=6"], "colour_cell"),
    (["--set", "student.colour_cell=24"], "does not divide data.hr_size=32"),
])
def test_bad_config_is_an_error_event(argv, needle, tmp_path):
    rc, text = run_raw(["teacher", "--preset", "test", "--data", tmp_path, "--out", tmp_path / "r", *argv])
    assert rc == 1
    event = json.loads(text.strip().splitlines()[-2])
    assert event["event"] == "error" and needle in event["message"]
    assert not (tmp_path / "r").exists()


def test_missing_out_is_reported(tmp_path):
    rc, text = run_raw(["teacher", "--preset", "test", "--data", tmp_path])
    assert rc == 1 and "--out" in json.loads(text.splitlines()[-2])["message"]


def test_every_command_has_help_or_says_it_is_missing(capsys):
    for command in cli.ALL_COMMANDS:
        try:
            rc = cli.main([command, "--help"])
        except SystemExit as e:          # argparse help
            rc = e.code
        captured = capsys.readouterr()
        if rc == 0:
            assert "usage:" in captured.out
        else:
            assert rc == 2 and "not available" in captured.err, (command, captured.err)
    assert set(cli.ALL_COMMANDS) >= {"teacher", "student", "autoencoder", "export", "eval", "bench",
                                      "degrade-samples", "faces", "nets"}


def test_unknown_command_and_nets(capsys):
    assert cli.main(["teachr"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert cli.main(["nets"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "base" in out


def test_module_entry_point_runs():
    p = subprocess.run([sys.executable, "-m", "duoscale_trainer", "--help"], cwd=TRAINER,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "teacher" in p.stdout and "student" in p.stdout
