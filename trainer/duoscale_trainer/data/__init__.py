"""Data: photo folders, degradations (bicubic, Real-ESRGAN second order), MATLAB resize, faces."""

# submodules degrade, faces, resize, dataset stay reachable as attributes (e.g. data.degrade.run)
from .dataset import FixedPairs, ImageError, PairDataset, decode_image, list_images, load_image
from .degrade import DegradeConfig, degrade_bicubic, degrade_realesrgan, make_lr, write_samples
from .resize import imresize, imresize_t

__all__ = [
    "DegradeConfig", "FixedPairs", "ImageError", "PairDataset", "decode_image", "degrade_bicubic",
    "degrade_realesrgan", "imresize", "imresize_t", "list_images", "load_image", "make_lr", "write_samples",
]
