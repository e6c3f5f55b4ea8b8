"""Data: photo folders, degradations (bicubic, Real-ESRGAN second order), MATLAB resize, faces."""

from .dataset import FixedPairs, ImageError, PairDataset, decode_image, list_images, load_image
from .degrade import DegradeConfig, degrade, degrade_bicubic, degrade_realesrgan, write_samples
from .resize import imresize, imresize_t

__all__ = [
    "DegradeConfig", "FixedPairs", "ImageError", "PairDataset", "decode_image", "degrade", "degrade_bicubic",
    "degrade_realesrgan", "imresize", "imresize_t", "list_images", "load_image", "write_samples",
]
