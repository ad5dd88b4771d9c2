"""Box-aware data augmentation with the TF OD API `preprocessor.proto` names and defaults.

Each op transforms one decoded example `(image, boxes, labels)` — image `[height, width, 3]`
uint8 or float 0..255, boxes float32 `[num_boxes, 4]` `rel_yxyx`, labels `[num_boxes]` — and
returns the same triple; `build_augmentation` chains ops from a TF OD API-style options list.
Examples with keypoints or instance masks pass, instead of the labels, a dict of per-object
fields (`{"labels", "keypoints", "keypoint_visibilities"}`, `{"labels", "masks"}` or all of
them), which every op moves with the boxes (`object_fields`).
`REFUSED_STEPS` names the `preprocessor.proto` steps kdet refuses, with the reason.
"""

from kdet.data.augmentation.builder import AUGMENTATION_OPS
from kdet.data.augmentation.builder import REFUSED_STEPS
from kdet.data.augmentation.builder import build_augmentation
from kdet.data.augmentation.crops import SSD_RANDOM_CROP_FIXED_ASPECT_RATIO_OPERATIONS
from kdet.data.augmentation.crops import SSD_RANDOM_CROP_OPERATIONS
from kdet.data.augmentation.crops import SSD_RANDOM_CROP_PAD_OPERATIONS
from kdet.data.augmentation.crops import random_crop_image
from kdet.data.augmentation.crops import random_crop_pad_image
from kdet.data.augmentation.crops import random_crop_to_aspect_ratio
from kdet.data.augmentation.crops import random_scale_crop_and_pad_to_square
from kdet.data.augmentation.crops import random_square_crop_by_scale
from kdet.data.augmentation.crops import ssd_random_crop
from kdet.data.augmentation.crops import ssd_random_crop_fixed_aspect_ratio
from kdet.data.augmentation.crops import ssd_random_crop_pad
from kdet.data.augmentation.crops import ssd_random_crop_pad_fixed_aspect_ratio
from kdet.data.augmentation.geometric import random_absolute_pad_image
from kdet.data.augmentation.geometric import random_downscale_to_target_pixels
from kdet.data.augmentation.geometric import random_horizontal_flip
from kdet.data.augmentation.geometric import random_image_scale
from kdet.data.augmentation.geometric import random_jitter_boxes
from kdet.data.augmentation.geometric import random_pad_image
from kdet.data.augmentation.geometric import random_pad_to_aspect_ratio
from kdet.data.augmentation.geometric import random_resize_method
from kdet.data.augmentation.geometric import random_rotation90
from kdet.data.augmentation.geometric import random_self_concat_image
from kdet.data.augmentation.geometric import random_vertical_flip
from kdet.data.augmentation.geometric import resize_image
from kdet.data.augmentation.labels import drop_label_probabilistically
from kdet.data.augmentation.labels import remap_labels
from kdet.data.augmentation.photometric import adjust_gamma
from kdet.data.augmentation.photometric import random_adjust_brightness
from kdet.data.augmentation.photometric import random_adjust_contrast
from kdet.data.augmentation.photometric import random_adjust_hue
from kdet.data.augmentation.photometric import random_adjust_saturation
from kdet.data.augmentation.photometric import random_black_patches
from kdet.data.augmentation.photometric import random_distort_color
from kdet.data.augmentation.photometric import random_jpeg_quality
from kdet.data.augmentation.photometric import random_patch_gaussian
from kdet.data.augmentation.photometric import random_pixel_value_scale
from kdet.data.augmentation.photometric import random_rgb_to_gray

__all__ = [
    "AUGMENTATION_OPS",
    "REFUSED_STEPS",
    "SSD_RANDOM_CROP_FIXED_ASPECT_RATIO_OPERATIONS",
    "SSD_RANDOM_CROP_OPERATIONS",
    "SSD_RANDOM_CROP_PAD_OPERATIONS",
    "adjust_gamma",
    "build_augmentation",
    "drop_label_probabilistically",
    "random_absolute_pad_image",
    "random_adjust_brightness",
    "random_adjust_contrast",
    "random_adjust_hue",
    "random_adjust_saturation",
    "random_black_patches",
    "random_crop_image",
    "random_crop_pad_image",
    "random_crop_to_aspect_ratio",
    "random_distort_color",
    "random_downscale_to_target_pixels",
    "random_horizontal_flip",
    "random_image_scale",
    "random_jitter_boxes",
    "random_jpeg_quality",
    "random_pad_image",
    "random_pad_to_aspect_ratio",
    "random_patch_gaussian",
    "random_pixel_value_scale",
    "random_resize_method",
    "random_rgb_to_gray",
    "random_rotation90",
    "random_scale_crop_and_pad_to_square",
    "random_self_concat_image",
    "random_square_crop_by_scale",
    "random_vertical_flip",
    "remap_labels",
    "resize_image",
    "ssd_random_crop",
    "ssd_random_crop_fixed_aspect_ratio",
    "ssd_random_crop_pad",
    "ssd_random_crop_pad_fixed_aspect_ratio",
]
