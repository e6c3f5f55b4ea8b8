"""scripts/interpolate-checkpoints.py: network interpolation between two student checkpoints
(MODELS.md "Network interpolation" rests on it)."""
import subprocess
import sys

import pytest
import torch

from duoscale_trainer.train.common import load_for_inference

from test_export import make_checkpoint
from trainhelpers import SCRIPTS, load_script

SCRIPT = SCRIPTS / "interpolate-checkpoints.py"


def _load():
    return load_script(SCRIPT.name)


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.fixture()
def pair(tmp_path):
    return make_checkpoint(tmp_path / "a.pt", seed=0), make_checkpoint(tmp_path / "b.pt", seed=5)


def test_the_ends_reproduce_each_checkpoint_and_the_middle_is_the_mean(pair, tmp_path):
    a, b = pair
    sa = torch.load(a, weights_only=False)["ema"]["student"]
    sb = torch.load(b, weights_only=False)["ema"]["student"]
    for alpha in (0.0, 0.5, 1.0):
        out = tmp_path / f"i{alpha}.pt"
        r = _run(a, b, out, "--alpha", alpha)
        assert r.returncode == 0, r.stderr
        net, _, _, _ = load_for_inference(out)        # loads where the two ends load
        got = net.state_dict()
        for k, v in got.items():
            if torch.is_floating_point(v):
                assert torch.allclose(v, (1 - alpha) * sa[k] + alpha * sb[k], atol=1e-6), k
    # the blend's output lies between the two ends' outputs on a real forward pass
    x = torch.rand(1, 48, 16, 16, generator=torch.Generator().manual_seed(1))
    t, cond = torch.zeros(1, dtype=torch.long), torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        ya, yb, ym = (load_for_inference(p)[0](x, t, cond) for p in (tmp_path / "i0.0.pt", tmp_path / "i1.0.pt",
                                                              tmp_path / "i0.5.pt"))
    assert not torch.allclose(ya, yb)
    assert (ym - ya).abs().mean() < (yb - ya).abs().mean()


def test_different_architectures_are_refused_with_both_names(pair, tmp_path):
    a, _ = pair
    other = make_checkpoint(tmp_path / "restore.pt", seed=1, restore=True)    # one more layer
    r = _run(a, other, tmp_path / "x.pt", "--alpha", 0.5)
    assert r.returncode == 2
    assert "a.pt" in r.stderr and "restore.pt" in r.stderr and "architecture" in r.stderr
    assert not (tmp_path / "x.pt").exists()


def test_alpha_outside_zero_to_one_is_refused(pair):
    a, b = pair
    ca, cb = (torch.load(p, weights_only=False) for p in (a, b))
    with pytest.raises(ValueError, match="between 0"):
        _load().interpolate(ca, cb, 1.5)
