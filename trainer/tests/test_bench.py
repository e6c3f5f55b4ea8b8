"""`bench`: one timed iteration per network, printed as ratios against same-run baselines."""

import json

from duoscale_trainer.cli import main

NETS = ("unet tiny", "student-1 pipeline", "teacher-15 pipeline", "downsampler diffusion tiny",
        "downsampler conv tiny", "D_HR tiny", "D_LR tiny", "codec s2d", "codec learned")


def test_bench_prints_ratios_for_every_network(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--device", "cpu", "--unet", "tiny", "--downsampler-preset", "tiny", "--conv-preset", "tiny",
               "--disc", "tiny", "--batch", "1", "--hr-size", "32", "--tile", "8", "--iters", "1", "--warmup", "0",
               "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "x ref" in text and "x bicubic" in text
    for name in NETS:
        assert name in text, name
    data = json.loads(out.read_text())
    (cpu,) = data["devices"]
    assert cpu["device"] == "cpu" and cpu["baseline"]["train_ms"] > 0 and cpu["baseline"]["infer_ms_per_tile"] > 0
    rows = {r["name"].split(" (")[0]: r for r in cpu["rows"]}
    assert len(rows) == len(NETS)
    for r in cpu["rows"]:
        assert r["infer_ms_per_tile"] > 0 and r["infer_x_bicubic"] > 0
        if "train_ms" in r:
            assert abs(r["train_x_ref"] - r["train_ms"] / cpu["baseline"]["train_ms"]) < 0.01 * r["train_x_ref"] + 1e-3
    # every trainable network has a training number; the pipelines and the S2D codec do not
    trained = {r["name"] for r in cpu["rows"] if "train_ms" in r}
    assert len(trained) == 6 and not any("pipeline" in n or "s2d" in n for n in trained)
    # the Real-ESRGAN LR: the loader's numpy pipeline against the batched one on the device
    d = cpu["degradation"]
    assert "data: Real-ESRGAN LR of 1 crops of 32 px" in text
    assert d["loader_ms_per_batch"] > 0 and d["device_ms_per_batch"] > 0
    assert abs(d["device_x_faster"] - d["loader_ms_per_batch"] / d["device_ms_per_batch"]) < 0.01 * d["device_x_faster"] + 0.01
