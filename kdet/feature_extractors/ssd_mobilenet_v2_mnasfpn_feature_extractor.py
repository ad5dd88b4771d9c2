"""SSD MobileNetV2 MnasFPN feature extractor: a MnasFPN head (levels 3..6) on MobileNetV2."""

import keras

from kdet.feature_extractors.mnasfpn import MNASFPN_CELLS
from kdet.feature_extractors.mnasfpn import MNASFPN_HYPERPARAMS
from kdet.feature_extractors.mnasfpn import MnasFPN
from kdet.feature_extractors.mobilenet_v2_body import mobilenet_v2_body
from kdet.feature_extractors.mobilenet_v2_body import pad_input
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_feature_extractor import SSDFeatureExtractor
from kdet.feature_extractors.ssd_feature_extractor import check_pad_to_multiple
from kdet.feature_extractors.ssd_feature_extractor import pad_to_multiple
from kdet.layers import conv_hyperparams as conv_hyperparams_lib

# The body maps MnasFPN reads, levels 3, 4, 5: TF-Slim MobileNetV2 `layer_7`, `layer_14`,
# `layer_18` (the last block's projection, before `Conv_1`).
LEVEL_ENDPOINTS = ("block_5_add", "block_12_add", "block_16_project_BN")

# The TF OD API's body scope: MnasFPN's `training_scope(l2_weight_decay=4e-5)` over
# MobileNetV2's own (slim L2 weight 4e-5 on every kernel, depthwise ones included).
MNASFPN_BODY_HYPERPARAMS = MNASFPN_HYPERPARAMS.replace(
    kernel_regularizer=keras.regularizers.L2(0.5 * 4e-5)
)


@register_feature_extractor("ssd_mobilenet_v2_mnasfpn")
class SSDMobileNetV2MnasFPNFeatureExtractor(SSDFeatureExtractor):
    """MobileNetV2 body with a MnasFPN head: the TF OD API's TF1 `ssd_mobilenet_v2_mnasfpn`.

    The body is TF-Slim's MobileNetV2 (`kdet.feature_extractors.mobilenet_v2_body` with
    `slim_layout`) up to its last block; `block_5_add`, `block_12_add` and
    `block_16_project_BN` (strides 8, 16, 32) feed a `kdet.feature_extractors.MnasFPN` named
    `mnasfpn`, which adds level 6 and refines the 4 levels through its 4 cells. The maps have
    `make_divisible(additional_layer_depth * depth_multiplier, 8, min_depth)` channels; a
    320x320 input gives maps of 40, 20, 10 and 5 pixels. Image sides must be multiples of 64
    (else a ValueError; `pad_to_multiple: 64` pads them).

    As in the TF OD API, the layers are set up by MnasFPN's own training scope whatever the
    config says: He-normal kernels, batch norm decay 0.99 and epsilon 0.01, L2 regularization
    (slim weight 4e-5 in the body, 1e-4 in the head, see `MNASFPN_HYPERPARAMS`).
    `conv_hyperparams` and `override_base_feature_extractor_hyperparams` are taken (so the
    TF OD API configs, which set them, load) and kept in `get_config`, but not read by the
    TF OD API extractor nor by this one.

    Args:
        depth_multiplier: float. Width multiplier of the body and the head. Defaults to `1.0`.
        min_depth: int. Lower bound on the depths (body convolutions but its expansions, head
            depths). Defaults to `16`.
        fpn_min_level: int, must be 3 (as in the TF OD API). Defaults to `3`.
        fpn_max_level: int, must be 6. Defaults to `6`.
        additional_layer_depth: int. Channels of the pyramid before the multiplier. Defaults
            to `48`.
        use_explicit_padding: bool. One-pixel padding and "valid" convolutions / poolings
            instead of "same" (TF OD API `use_explicit_padding`). Defaults to `False`.
        pad_to_multiple: int. Zero-pad the preprocessed images bottom/right to a multiple of
            it. Defaults to `1`.
        backbone_weights: `None` or `"imagenet"` (Keras's MobileNetV2 at depth multiplier 1),
            see `SSDFeatureExtractor`. Defaults to `None`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` or its config, or `None`; see
            above. Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool; see above. Defaults to `False`.
        num_cells: int. MnasFPN cells (the TF OD API's `head_def` has 4; fewer make a
            smaller model). Defaults to `4`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDMobileNetV2MnasFPNFeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 320, 320, 3]))
    [f.shape[1] for f in extractor(images)]  # [40, 20, 10, 5]
    ```

    Reference:
        [Chen et al., 2019](https://arxiv.org/abs/1912.01106); TF OD API
        `object_detection/models/ssd_mobilenet_v2_mnasfpn_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        fpn_min_level=3,
        fpn_max_level=6,
        additional_layer_depth=48,
        use_explicit_padding=False,
        pad_to_multiple=1,
        backbone_weights=None,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        num_cells=MNASFPN_CELLS,
        **kwargs,
    ):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        if (fpn_min_level, fpn_max_level) != (3, 6):
            raise ValueError(
                "ssd_mobilenet_v2_mnasfpn: fpn min_level and max_level must be 3 and 6 (as in "
                f"the TF OD API); got {fpn_min_level} and {fpn_max_level}"
            )
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.fpn_min_level = fpn_min_level
        self.fpn_max_level = fpn_max_level
        self.additional_layer_depth = additional_layer_depth
        self.use_explicit_padding = bool(use_explicit_padding)
        self.pad_to_multiple = check_pad_to_multiple(pad_to_multiple)
        self.conv_hyperparams = conv_hyperparams_lib.get(conv_hyperparams)
        self.override_base_feature_extractor_hyperparams = bool(
            override_base_feature_extractor_hyperparams
        )
        self.body = _mnasfpn_body(
            depth_multiplier, min_depth, self.use_explicit_padding, backbone_weights
        )
        self.num_cells = num_cells
        self.mnasfpn = MnasFPN(
            depth_multiplier, min_depth, additional_layer_depth, self.use_explicit_padding,
            MNASFPN_HYPERPARAMS, num_cells=num_cells, name="mnasfpn",
        )

    def preprocess(self, images):
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def call(self, images, training=None):
        """Preprocessed images `[batch, height, width, 3]` → 4 maps, levels 3..6."""
        images = pad_to_multiple(images, self.pad_to_multiple)
        return self.mnasfpn(self.body(images, training=training), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "min_depth": self.min_depth,
            "fpn_min_level": self.fpn_min_level,
            "fpn_max_level": self.fpn_max_level,
            "additional_layer_depth": self.additional_layer_depth,
            "use_explicit_padding": self.use_explicit_padding,
            "pad_to_multiple": self.pad_to_multiple,
            "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
            "override_base_feature_extractor_hyperparams": (
                self.override_base_feature_extractor_hyperparams
            ),
            "num_cells": self.num_cells,
        })
        return config


def _mnasfpn_body(depth_multiplier, min_depth, use_explicit_padding, weights):
    """TF-Slim's MobileNetV2 → `[C3, C4, C5]` (`LEVEL_ENDPOINTS`), named `MobilenetV2`."""
    body = mobilenet_v2_body(
        depth_multiplier,
        weights,
        hyperparams=MNASFPN_BODY_HYPERPARAMS,
        use_explicit_padding=use_explicit_padding,
        min_depth=min_depth,
        slim_layout=True,
    )
    body = keras.Model(
        body.input, [body.get_layer(name).output for name in LEVEL_ENDPOINTS], name="MobilenetV2"
    )
    return pad_input(body, "MobilenetV2") if use_explicit_padding else body
