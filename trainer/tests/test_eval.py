"""`eval` on three tiny generated photos: every method x metric in the JSON, the grid PNG's size,
the ONNX student scoring like its checkpoint, and clear errors."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from duoscale_trainer import evaluate as V
from duoscale_trainer import export as E
from test_export import make_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    val = root / "val"
    val.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:44] / 40.0
    for i in range(3):
        img = np.stack([0.5 + 0.4 * np.sin(5 * xx + i), 0.2 + 0.6 * yy, 0.5 + 0.3 * np.cos(7 * xx * yy)], -1)
        img = np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(val / f"p{i}.png")
    ck = make_checkpoint(root / "last.pt")
    E.export(ck, root / "m", "s-x4")  # the same student as ONNX
    out = root / "out"
    result = V.evaluate(str(val), str(out), students=[("ckpt", str(ck)), ("onnx", str(root / "m" / "s-x4.onnx"))],
                        crop=32, stochastic_teacher=True, runtime_repeats=1, grid_rows=3, grid_crop=16)
    return out, result


def test_json_has_every_method_and_metric(run):
    out, result = run
    data = json.loads((out / "eval.json").read_text())
    assert data["crop"] == {"hr": 32, "lr": 8, "where": "centre"}
    assert "Y" in data["colour_space"] and data["degradations"]["realesrgan"]["seed"] == 1234
    assert data["n_images"] == 3
    methods = ["lanczos", "bicubic", "teacher-4", "teacher-4-stochastic", "ckpt", "onnx"]
    for deg in ("bicubic", "realesrgan"):
        assert list(data["summary"][deg]) == methods
        for m in methods:
            row = data["summary"][deg][m]
            for k in V.METRIC_KEYS:
                assert isinstance(row[k], float) and math.isfinite(row[k]), (deg, m, k)
            assert row["n"] == 3 and len(data["per_image"][deg][m]) == 3
        # classical upscalers of smooth photos are far better than chance, and differ from each other
        assert data["summary"][deg]["bicubic"]["psnr_y"] > 20
        assert data["summary"][deg]["bicubic"] != data["summary"][deg]["lanczos"]
    # the ONNX export of the student scores like its checkpoint (same noise, same crops)
    for deg in ("bicubic", "realesrgan"):
        a, b = data["summary"][deg]["ckpt"], data["summary"][deg]["onnx"]
        assert abs(a["psnr_y"] - b["psnr_y"]) < 0.05
    # teacher-4 and student-1 timed in the same onnxruntime run
    ms = data["runtime"]["ms"]
    assert set(ms) == {"teacher-4", "ckpt", "onnx"} and all(v > 0 for v in ms.values())
    # the speed-up is the ratio of those timings (how large it is belongs to bench scripts, not to
    # a unit test on a shared, noisy CPU)
    for s in ("ckpt", "onnx"):
        assert data["runtime"]["speedup_vs_teacher-4"][s] == round(ms["teacher-4"] / ms[s], 2)
    assert set(data["acceptance"]) == {"ckpt", "onnx"}
    md = (out / "eval.md").read_text()
    assert "| teacher-4 |" in md and "PSNR-Y" in md


def test_grid_png_has_the_expected_size(run):
    out, result = run
    for deg in ("bicubic", "realesrgan"):
        g = result["grids"][deg]
        assert g["columns"] == ["input (nearest)", "lanczos", "teacher-4", "teacher-4-stochastic", "ckpt",
                                "onnx", "ground truth"]
        with Image.open(out / g["file"]) as im:
            # 7 columns and 3 rows of 16 px crops, 4 px gaps, 16 px label band
            assert im.size == (7 * 16 + 8 * 4, 16 + 3 * 16 + 4 * 4) == tuple(g["size"])
            arr = np.asarray(im.convert("RGB"))
        # the label band has dark text on white; the last column is the ground truth crop
        assert arr[:16].min() < 100
        assert arr[20:36, 4 + 6 * 20: 4 + 6 * 20 + 16].std() > 1


def test_bad_val_folder_and_missing_model_are_clear_errors(tmp_path):
    with pytest.raises(V.EvalError, match="not a folder"):
        V.evaluate(str(tmp_path / "missing"), str(tmp_path / "o"))
    (tmp_path / "v").mkdir()
    with pytest.raises(V.EvalError, match="nope.pt"):
        V.evaluate(str(tmp_path / "v"), str(tmp_path / "o"), students=[("s", str(tmp_path / "nope.pt"))])


def test_acceptance_reads_within_half_a_db_from_either_side():
    from duoscale_trainer.evaluate import acceptance

    def summary(student_db):
        row = {"psnr_y": 0.0, "sharpness": 1.0, "sharpness_pooled": 0.9, "colour_shift": 0.5}
        return {"bicubic": {"bicubic": {**row, "psnr_y": 30.0}, "t": {**row, "psnr_y": 31.0, "_kind": "teacher"},
                            "s": {**row, "psnr_y": student_db, "_kind": "student"}},
                "realesrgan": {"s": {**row, "_kind": "student"}}}
    assert acceptance(summary(30.7), None)["s"]["within_0.5db_of_teacher"] is True
    assert acceptance(summary(30.4), None)["s"]["within_0.5db_of_teacher"] is False   # 0.6 below
    assert acceptance(summary(31.6), None)["s"]["within_0.5db_of_teacher"] is False   # 0.6 above
    a = acceptance(summary(31.4), None)["s"]
    assert a["beats_bicubic_by_0.5db"] and a["within_0.5db_of_teacher"]
    assert a["sharpness_at_least_0.8"] and a["realesrgan_sharpness_pooled"] == 0.9


def test_acceptance_spreads_the_bicubic_gain_over_the_crops():
    from duoscale_trainer.evaluate import acceptance

    row = {"sharpness": 1.0, "sharpness_pooled": 0.9, "colour_shift": 0.5}
    summary = {"bicubic": {"bicubic": {**row, "psnr_y": 40.0}, "s": {**row, "psnr_y": 39.0, "_kind": "student"}}}
    # three textured crops gain 1 dB, one smooth crop loses 7 dB: the mean says "below bicubic",
    # the median and the count say where
    per = {"bicubic": {"bicubic": [{"psnr_y": p} for p in (30.0, 28.0, 25.0, 60.0)],
                       "s": [{"psnr_y": p} for p in (31.0, 29.0, 26.0, 53.0)]}}
    a = acceptance(summary, None, per)["s"]
    assert a["bicubic_psnr_gain_db"] == -1.0 and a["beats_bicubic_by_0.5db"] is False
    assert a["bicubic_psnr_gain_median_db"] == 1.0 and a["crops_above_bicubic"] == "3/4"
    assert "crops_above_bicubic" not in acceptance(summary, None)["s"]


def noise_folder_and_checkpoint(tmp_path, seed, restore=False):
    """Two 36x36 random-noise photos in tmp_path/val and a tiny student checkpoint (with the restore
    input when restore=True)."""
    val = tmp_path / "val"
    val.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(val / f"q{i}.png")
    return val, make_checkpoint(tmp_path / "last.pt", restore=restore)


def test_one_checkpoint_scored_at_two_noise_strengths(tmp_path):
    """--noise-strength NAME=S: the deterministic mode gives the same output for any noise seed,
    the full-noise mode does not, and a strength that names no student is an error."""
    val, ck = noise_folder_and_checkpoint(tmp_path, 3)
    kw = dict(students=[("det", str(ck)), ("full", str(ck))], noise_strengths={"det": 0.0},
              degradations=("bicubic",), crop=32, runtime=False, grid_rows=0)
    r1 = V.evaluate(str(val), str(tmp_path / "o1"), noise_seed=1, **kw)
    r2 = V.evaluate(str(val), str(tmp_path / "o2"), noise_seed=2, **kw)
    assert r1["methods"]["det"]["noise_strength"] == 0.0 and r1["methods"]["full"]["noise_strength"] == 1.0
    det = [r["psnr_y"] for r in r1["per_image"]["bicubic"]["det"]]
    assert det == [r["psnr_y"] for r in r2["per_image"]["bicubic"]["det"]]
    assert [r["psnr_y"] for r in r1["per_image"]["bicubic"]["full"]] != \
        [r["psnr_y"] for r in r2["per_image"]["bicubic"]["full"]]
    # --grid-methods picks and orders the grid's columns; a name that is no method is an error
    r3 = V.evaluate(str(val), str(tmp_path / "o4"), **{**kw, "grid_rows": 2, "grid_crop": 16},
                    grid_methods=["full", "lanczos", "det"])
    assert r3["grids"]["bicubic"]["columns"] == ["input (nearest)", "full", "lanczos", "det", "ground truth"]
    with Image.open(tmp_path / "o4" / "grid-bicubic.png") as im:
        assert im.size == (5 * 16 + 6 * 4, 16 + 2 * 16 + 3 * 4)
    with pytest.raises(V.EvalError, match="not methods of this run"):
        V.evaluate(str(val), str(tmp_path / "o5"), **kw, grid_methods=["nope"])
    with pytest.raises(V.EvalError, match="match no --student"):
        V.evaluate(str(val), str(tmp_path / "o3"), **{**kw, "noise_strengths": {"typo": 0.0}})
    with pytest.raises(Exception, match="NAME=S"):
        V._parse_strength("det=2")


def test_acceptance_holds_a_student_to_the_teacher_row_at_its_own_noise_strength():
    from duoscale_trainer.evaluate import acceptance

    row = {"sharpness": 1.0, "sharpness_pooled": 0.9, "colour_shift": 0.5}
    summary = {"bicubic": {"bicubic": {**row, "psnr_y": 30.0},
                           "teacher-15": {**row, "psnr_y": 28.0, "_kind": "teacher", "_noise_strength": 1.0},
                           "teacher-15@0": {**row, "psnr_y": 30.3, "_kind": "teacher", "_noise_strength": 0.0},
                           "det": {**row, "psnr_y": 30.6, "_kind": "student", "_noise_strength": 0.0},
                           "full": {**row, "psnr_y": 29.0, "_kind": "student", "_noise_strength": 1.0},
                           "half": {**row, "psnr_y": 29.5, "_kind": "student", "_noise_strength": 0.5}}}
    runtime = {"speedup_vs_teacher-15": {"det": 12.0, "full": 12.0, "half": 9.0}}
    a = acceptance(summary, runtime)
    # the deterministic student against the deterministic chain: 0.3 dB apart, within 0.5
    assert a["det"]["teacher_compared"] == "teacher-15@0" and a["det"]["psnr_gap_to_teacher_db"] == -0.3
    assert a["det"]["within_0.5db_of_teacher"] is True
    assert a["det"]["psnr_gap_to_teacher-15_db"] == -2.6          # the full-noise gap is still reported
    # full noise against full noise; a strength with no teacher row falls back to the first teacher
    assert a["full"]["teacher_compared"] == "teacher-15" and a["full"]["within_0.5db_of_teacher"] is False
    assert a["half"]["teacher_compared"] == "teacher-15" and "psnr_gap_to_teacher-15_db" not in a["half"]
    assert a["det"]["speedup_vs_teacher"] == 12.0 and a["half"]["at_least_10x_faster"] is False


def test_teacher_scored_at_another_noise_strength(tmp_path):
    """--teacher-at S adds the teacher's chain (4 steps in this test checkpoint) at strength S:
    deterministic at 0 (same output for any noise seed), its own row in the table; a repeated or
    bad value and an ONNX teacher (its strength is built in) are refused."""
    val, ck = noise_folder_and_checkpoint(tmp_path, 4)
    kw = dict(students=[("det", str(ck))], noise_strengths={"det": 0.0}, teacher_strengths=[0.0],
              degradations=("bicubic",), crop=32, runtime=False, grid_rows=0)
    r1 = V.evaluate(str(val), str(tmp_path / "o1"), noise_seed=1, **kw)
    r2 = V.evaluate(str(val), str(tmp_path / "o2"), noise_seed=2, **kw)
    assert r1["methods"]["teacher-4@0"]["noise_strength"] == 0.0
    assert r1["methods"]["teacher-4"]["noise_strength"] == 1.0
    t0 = [r["psnr_y"] for r in r1["per_image"]["bicubic"]["teacher-4@0"]]
    assert t0 == [r["psnr_y"] for r in r2["per_image"]["bicubic"]["teacher-4@0"]]
    assert [r["psnr_y"] for r in r1["per_image"]["bicubic"]["teacher-4"]] != \
        [r["psnr_y"] for r in r2["per_image"]["bicubic"]["teacher-4"]]
    assert r1["acceptance"]["det"]["teacher_compared"] == "teacher-4@0"
    assert "_noise_strength" not in json.dumps(r1["summary"])
    with pytest.raises(V.EvalError, match="twice"):
        V.evaluate(str(val), str(tmp_path / "o3"), **{**kw, "teacher_strengths": [0.0, 0.0]})
    with pytest.raises(Exception, match="--teacher-at"):
        V._parse_teacher_strength("1.5")
    E.export(ck, tmp_path / "m", "s-x4")
    with pytest.raises(V.EvalError, match="teacher checkpoint"):
        V.evaluate(str(val), str(tmp_path / "o4"), **{**kw, "teacher": str(tmp_path / "m" / "s-x4.onnx")})


def test_restore_input_follows_the_degradation_or_a_fixed_value(tmp_path):
    """--restore NAME=MODE on a restore-conditioned student: "truth" (the default) feeds 1 under
    realesrgan and 0 under bicubic, so it scores like the fixed-1 row on the one and the fixed-0
    row on the other; --restore on a plain student is an error."""
    val, ck = noise_folder_and_checkpoint(tmp_path, 5, restore=True)
    r = V.evaluate(str(val), str(tmp_path / "o"), students=[("t", str(ck)), ("off", str(ck)), ("on", str(ck))],
                   restores={"off": "0", "on": "1"}, crop=32, runtime=False, grid_rows=0)
    assert r["methods"]["t"]["restore"] == "truth" and r["methods"]["on"]["restore"] == 1.0
    per = r["per_image"]
    ps = {(d, m): [x["psnr_y"] for x in per[d][m]] for d in per for m in ("t", "off", "on")}
    assert ps["realesrgan", "t"] == ps["realesrgan", "on"] != ps["realesrgan", "off"]
    assert ps["bicubic", "t"] == ps["bicubic", "off"] != ps["bicubic", "on"]
    plain = make_checkpoint(tmp_path / "p.pt")
    with pytest.raises(V.EvalError, match="restore input"):
        V.evaluate(str(val), str(tmp_path / "o2"), students=[("p", str(plain))], restores={"p": "1"},
                   crop=32, runtime=False, grid_rows=0)
    with pytest.raises(V.EvalError, match="number in"):
        V.evaluate(str(val), str(tmp_path / "o3"), students=[("t", str(ck))], restores={"t": "maybe"},
                   crop=32, runtime=False, grid_rows=0)


def test_repair_noise_moves_repaired_crops_only(tmp_path):
    """--repair-noise NAME=S scores a checkpoint as `export --repair-noise S` would build it: under
    bicubic (restore 0 by truth) it matches the plain row exactly, under realesrgan (restore 1) it
    differs; an ONNX file or a plain student refuses the flag."""
    val, ck = noise_folder_and_checkpoint(tmp_path, 6, restore=True)
    kw = dict(crop=32, runtime=False, grid_rows=0)
    r = V.evaluate(str(val), str(tmp_path / "o"), students=[("a", str(ck)), ("n", str(ck))],
                   noise_strengths={"a": 0.0, "n": 0.0}, repair_noises={"n": 1.0}, **kw)
    assert r["methods"]["n"]["repair_noise"] == 1.0
    ps = {(d, m): [x["psnr_y"] for x in r["per_image"][d][m]] for d in r["per_image"] for m in ("a", "n")}
    assert ps["bicubic", "a"] == ps["bicubic", "n"] and ps["realesrgan", "a"] != ps["realesrgan", "n"]
    with pytest.raises(V.EvalError, match="restore input"):
        V.evaluate(str(val), str(tmp_path / "o2"), students=[("p", str(make_checkpoint(tmp_path / "p.pt")))],
                   repair_noises={"p": 0.5}, **kw)
    E.export(ck, tmp_path / "m", "s-x4")
    with pytest.raises(V.EvalError, match="checkpoints only"):
        V.evaluate(str(val), str(tmp_path / "o3"), students=[("x", str(tmp_path / "m" / "s-x4.onnx"))],
                   repair_noises={"x": 0.5}, **kw)
