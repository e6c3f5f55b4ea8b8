"""MATLAB resize, photo decoding, PairDataset / FixedPairs determinism."""

import numpy as np
import pytest
import torch
from PIL import Image

from duoscale_trainer.data import dataset as ds
from duoscale_trainer.data.dataset import FixedPairs, ImageError, PairDataset, decode_image, list_images
from duoscale_trainer.data.degrade import degrade_bicubic
from duoscale_trainer.data.resize import cubic, imresize, imresize_t, resize_weights

# ---------------------------------------------------------------------------------------------
# resize


@pytest.mark.parametrize("scale", [0.25, 0.5, 0.37, 2.0, 4.0])
def test_constant_image_keeps_its_value(scale):
    img = np.full((37, 52, 3), 0.4217, np.float32)
    out = imresize(img, scale)
    assert np.abs(out - 0.4217).max() < 1e-6


def test_weights_sum_to_one_and_match_the_cubic_formula():
    idx, w = resize_weights(64, 16, 0.25)
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-12)
    # interior output pixel 5 sits at input coordinate 21.5: taps at distances 0.5, 1.5, ... 7.5,
    # kernel stretched by 4 and scaled by 1/4 (antialias); no renormalisation needed in the interior
    row = dict(zip(idx[5], w[5]))
    for j in range(14, 30):
        d = abs(21.5 - j)
        assert row[j] == pytest.approx(0.25 * cubic(np.array(d / 4.0)), abs=1e-12)
    assert row[21] == pytest.approx(0.25 * (1.5 * 0.125 ** 3 - 2.5 * 0.125 ** 2 + 1))   # 0.24097
    # upscale x4: output 0 of pixel 8 sits at 8 - 0.375: Keys weights at distances .375/.625/1.375/1.625
    idx, w = resize_weights(16, 64, 4.0)
    got = dict(zip(idx[32], w[32]))
    for j, d in [(6, 1.625), (7, 0.625), (8, 0.375), (9, 1.375)]:
        assert got[j] == pytest.approx(float(cubic(np.array(d))), abs=1e-12)


def test_mean_brightness_preserved():
    rng = np.random.default_rng(0)
    img = rng.random((256, 256, 3)).astype(np.float32)
    for scale in (0.25, 0.5):
        out = imresize(img, scale)
        assert abs(out.mean() - img.mean()) * 255 < 0.05


def test_symmetric_image_stays_symmetric():
    rng = np.random.default_rng(1)
    half = rng.random((40, 20, 3)).astype(np.float32)
    img = np.concatenate([half, half[:, ::-1]], axis=1)            # mirror-symmetric left/right
    out = imresize(img, 0.25)
    assert np.abs(out - out[:, ::-1]).max() < 1e-6
    up = imresize(img, 2.0)
    assert np.abs(up - up[:, ::-1]).max() < 1e-6


def test_linear_ramp_is_centre_aligned():
    """A ramp f(x) = a + b x sampled at pixel centres must come out as f at the output pixel centres
    (x_out = (i + 0.5) * 4 - 0.5): a half-pixel shift would show up as a constant offset."""
    x = np.arange(96, dtype=np.float64)
    img = np.repeat((0.1 + 0.008 * x)[None, :, None], 8, axis=0).repeat(3, axis=2)
    out = imresize(img, 0.25)
    i = np.arange(out.shape[1])
    expected = 0.1 + 0.008 * ((i + 0.5) * 4 - 0.5)
    assert np.abs(out[1, 3:-3, 0] - expected[3:-3]).max() < 1e-9
    up = imresize(img[:, :24], 4.0)
    j = np.arange(up.shape[1])
    exp_up = 0.1 + 0.008 * ((j + 0.5) / 4 - 0.5)
    assert np.abs(up[4, 8:-8, 0] - exp_up[8:-8]).max() < 1e-9


def test_torch_version_matches_and_is_differentiable():
    rng = np.random.default_rng(2)
    img = rng.random((32, 24, 3)).astype(np.float32)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].requires_grad_(True)
    out = imresize_t(t, 0.25)
    assert out.shape == (1, 3, 8, 6)
    assert np.abs(out[0].permute(1, 2, 0).detach().numpy() - imresize(img, 0.25)).max() < 1e-5
    out.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    assert imresize_t(t[0].detach(), out_shape=(64, 48)).shape == (3, 64, 48)


# ---------------------------------------------------------------------------------------------
# decoding


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 3) % 256, (y * 5) % 256, ((x + y) * 2) % 256], axis=-1).astype(np.float32)
    return np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture()
def photo_folder(tmp_path):
    import cv2
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    a = _photo(90, 120, 0)
    Image.fromarray(a).save(root / "a.jpg", quality=95)
    Image.fromarray(_photo(100, 80, 1)).save(root / "sub" / "b.webp", lossless=True)
    Image.fromarray(_photo(70, 70, 2)).save(root / "c.TIFF")
    Image.fromarray(_photo(40, 50, 3)[..., 0]).save(root / "d_gray.png")           # smaller than a crop
    rgba = np.dstack([_photo(80, 80, 4), np.full((80, 80), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "e_rgba.png")
    sixteen = (_photo(72, 72, 5).astype(np.uint16) * 257 + 123)
    cv2.imwrite(str(root / "f16.png"), sixteen[..., ::-1])
    (root / ".hidden.png").write_bytes(b"nope")
    (root / "notes.txt").write_text("not an image")
    return root


def test_list_images(photo_folder, tmp_path):
    names = [p.relative_to(photo_folder).as_posix() for p in list_images(photo_folder)]
    assert names == ["a.jpg", "c.TIFF", "d_gray.png", "e_rgba.png", "f16.png", "sub/b.webp"]
    assert len(list_images(photo_folder, recursive=False)) == 5
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="empty: no images"):
        list_images(empty)
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")


def test_decode_formats(photo_folder):
    import cv2
    gray = decode_image(photo_folder / "d_gray.png")
    assert gray.shape == (40, 50, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    sixteen = decode_image(photo_folder / "f16.png")
    assert sixteen.dtype == np.uint16
    raw = cv2.imread(str(photo_folder / "f16.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.array_equal(sixteen, raw)                           # full 16-bit precision kept
    assert decode_image(photo_folder / "sub" / "b.webp").shape == (100, 80, 3)
    assert np.array_equal(decode_image(photo_folder / "c.TIFF"), _photo(70, 70, 2))
    # alpha over white
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(photo_folder / "alpha.png")
    out = decode_image(photo_folder / "alpha.png")
    assert (out[:2] == [200, 0, 0]).all() and (out[2:] == 255).all()


def test_exif_orientation_applied(tmp_path):
    a = _photo(30, 50, 7)
    im = Image.fromarray(a)
    exif = im.getexif()
    for orientation in (3, 6, 7, 8):
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"
        im.save(path, exif=exif.tobytes())
        from PIL import ImageOps
        with Image.open(path) as ref:
            want = np.asarray(ImageOps.exif_transpose(ref).convert("RGB"))
        assert np.array_equal(decode_image(path), want), orientation


def test_broken_file_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage, not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        decode_image(bad)
    data = PairDataset([bad], hr_size=32)
    with pytest.raises(ImageError, match="broken.jpg"):
        data[0]
    with pytest.raises(ImageError, match="empty"):
        (tmp_path / "zero.png").write_bytes(b"")
        decode_image(tmp_path / "zero.png")


# ---------------------------------------------------------------------------------------------
# datasets


def test_pair_dataset_shapes_ranges_and_native_pixels(photo_folder):
    data = PairDataset(photo_folder, hr_size=32, length=12, seed=3)
    assert len(data) == 12
    for i in range(12):
        item = data[i]
        assert item["hr"].shape == (3, 32, 32) and item["lr"].shape == (3, 8, 8)
        assert item["hr"].dtype == torch.float32
        assert item["hr"].min() >= -1 and item["hr"].max() <= 1 and item["lr"].min() >= -1
    # the cache holds photos at native resolution
    cached = data.cache.get(data.paths[0])
    assert cached.shape == (90, 120, 3)


def test_pair_dataset_crops_come_from_the_photo(photo_folder):
    """Without flips, the HR crop is a window of the decoded photo, and the bicubic LR is exactly
    degrade_bicubic of that crop."""
    path = photo_folder / "c.TIFF"
    data = PairDataset([path], hr_size=32, degradation="bicubic", flips="none", length=3)
    full = decode_image(path).astype(np.float32) / 255
    for i in range(3):
        hr, lr = data.sample(i)
        hits = [(y, x) for y in range(39) for x in range(39) if np.array_equal(full[y:y + 32, x:x + 32], hr)]
        assert hits
        assert np.array_equal(lr, degrade_bicubic(hr))


def test_pair_dataset_deterministic_per_seed_index_epoch(photo_folder):
    a = PairDataset(photo_folder, hr_size=32, length=8, seed=5)
    b = PairDataset(photo_folder, hr_size=32, length=8, seed=5)
    # read b in another order first: cache state must not matter
    _ = [b[i] for i in reversed(range(8))]
    for i in range(8):
        assert torch.equal(a[i]["hr"], b[i]["hr"]) and torch.equal(a[i]["lr"], b[i]["lr"])
    a.set_epoch(1)
    moved = sum(not torch.equal(a[i]["hr"], b[i]["hr"]) for i in range(8))
    assert moved >= 6
    b.set_epoch(1)
    assert all(torch.equal(a[i]["lr"], b[i]["lr"]) for i in range(8))
    # stateless access used by the trainer's step sampler
    b.set_epoch(0)
    assert all(torch.equal(b.get(i, 1)["hr"], a[i]["hr"]) for i in range(8)) and b.epoch == 0
    c = PairDataset(photo_folder, hr_size=32, length=8, seed=6)
    assert sum(not torch.equal(a[i]["lr"], c[i]["lr"]) for i in range(8)) >= 6


def test_pair_dataset_flags_real_esrgan_pairs(photo_folder):
    """item["real"] (and is_real, which builds no image) is 1 exactly for the pairs whose LR is not
    the bicubic-only LR of their HR crop; the flag does not change the pairs themselves."""
    data = PairDataset(photo_folder, hr_size=32, length=24, seed=2, degradation="mixed", bicubic_share=0.5)
    flags = []
    for i in range(24):
        item = data.get(i, 1)
        hr, lr = data.sample(i, 1)
        assert torch.equal(item["lr"], ds.to_tensor(lr))
        real = not np.array_equal(lr, degrade_bicubic(hr))
        assert item["real"].item() == float(real) == float(data.is_real(i, 1))
        flags.append(real)
    assert 0 < sum(flags) < 24
    assert all(PairDataset(photo_folder, hr_size=32, length=4, degradation="realesrgan").is_real(i)
               for i in range(4))
    assert not any(PairDataset(photo_folder, hr_size=32, length=4, degradation="bicubic").is_real(i)
                   for i in range(4))


def test_dataloader_workers_give_the_same_batches(photo_folder):
    from torch.utils.data import DataLoader
    data = PairDataset(photo_folder, hr_size=32, length=8, seed=1)
    data.set_epoch(2)
    serial = [b["lr"] for b in DataLoader(data, batch_size=4, num_workers=0)]
    parallel = [b["lr"] for b in DataLoader(data, batch_size=4, num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(serial, parallel))


def test_cache_is_bounded(photo_folder):
    cache = ds.ImageCache(max_bytes=40_000)
    for p in list_images(photo_folder):
        cache.get(p)
    assert cache.bytes <= 40_000 or len(cache) == 1
    assert len(cache) < 6


def test_faces_mode_uses_whole_crop(photo_folder):
    data = PairDataset([photo_folder / "e_rgba.png"], hr_size=64, faces=True, degradation="bicubic")
    hr, lr = data.sample(0)
    full = decode_image(photo_folder / "e_rgba.png").astype(np.float32) / 255
    resized = np.clip(imresize(full, out_shape=(64, 64)), 0, 1)
    assert np.allclose(hr, resized, atol=1e-6) or np.allclose(hr, resized[:, ::-1], atol=1e-6)


def test_fixed_pairs(photo_folder):
    a = FixedPairs(photo_folder, hr_size=32, seed=9)
    b = FixedPairs(photo_folder, hr_size=32, seed=9)
    assert len(a) == 6
    for i in range(len(a)):
        assert torch.equal(a[i]["lr"], b[i]["lr"]) and a[i]["name"] == b[i]["name"]
    full = decode_image(photo_folder / "a.jpg").astype(np.float32) / 255
    centre = full[29:61, 44:76]
    assert np.allclose(a[0]["hr"].numpy().transpose(1, 2, 0), centre * 2 - 1, atol=1e-6)
    many = FixedPairs(photo_folder, hr_size=32, crops_per_image=4, limit=10)
    assert len(many) == 10 and len(set(many.names)) == 10
