"""Box-aware data augmentation with the TF OD API `preprocessor.proto` names and defaults.

Each op transforms one decoded example `(image, boxes, labels)` — image `[height, width, 3]`
uint8 or float 0..255, boxes float32 `[num_boxes, 4]` `rel_yxyx`, labels `[num_boxes]` — and
returns the same triple; `build_augmentation` chains ops from a TF OD API-style options list.
"""

from kdet.data.augmentation.builder import AUGMENTATION_OPS
from kdet.data.augmentation.builder import build_augmentation
from kdet.data.augmentation.crops import SSD_RANDOM_CROP_OPERATIONS
from kdet.data.augmentation.crops import random_crop_image
from kdet.data.augmentation.crops import random_scale_crop_and_pad_to_square
from kdet.data.augmentation.crops import ssd_random_crop
from kdet.data.augmentation.geometric import random_horizontal_flip
from kdet.data.augmentation.geometric import random_pad_image
from kdet.data.augmentation.geometric import random_rotation90
from kdet.data.augmentation.geometric import random_vertical_flip
from kdet.data.augmentation.photometric import random_adjust_brightness
from kdet.data.augmentation.photometric import random_adjust_contrast
from kdet.data.augmentation.photometric import random_adjust_hue
from kdet.data.augmentation.photometric import random_adjust_saturation
from kdet.data.augmentation.photometric import random_distort_color
from kdet.data.augmentation.photometric import random_jpeg_quality
from kdet.data.augmentation.photometric import random_rgb_to_gray

__all__ = [
    "AUGMENTATION_OPS",
    "SSD_RANDOM_CROP_OPERATIONS",
    "build_augmentation",
    "random_adjust_brightness",
    "random_adjust_contrast",
    "random_adjust_hue",
    "random_adjust_saturation",
    "random_crop_image",
    "random_distort_color",
    "random_horizontal_flip",
    "random_jpeg_quality",
    "random_pad_image",
    "random_rgb_to_gray",
    "random_rotation90",
    "random_scale_crop_and_pad_to_square",
    "random_vertical_flip",
    "ssd_random_crop",
]
