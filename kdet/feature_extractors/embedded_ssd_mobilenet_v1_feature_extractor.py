"""Embedded SSD MobileNetV1 feature extractor: five maps of a 256x256 image."""

from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_v1_feature_extractor import BODY_ENDPOINTS
from kdet.feature_extractors.ssd_mobilenet_v1_feature_extractor import (
    SSDMobileNetV1FeatureExtractorBase,
)

# The only input size the extractor takes (TF OD API: "image size must be 256").
IMAGE_SIZE = 256
# The TF OD API feature_map_layout of the three extra maps: depths and stride-2 kernel sizes.
EXTRA_LAYER_DEPTHS = (512, 256, 256)
EXTRA_LAYER_KERNEL_SIZES = (3, 3, 2)


@register_feature_extractor("embedded_ssd_mobilenet_v1")
class EmbeddedSSDMobileNetV1FeatureExtractor(SSDMobileNetV1FeatureExtractorBase):
    """SSD MobileNetV1 for embedded devices: 256x256 images, five feature maps, no kernel
    larger than its input.

    `SSDMobileNetV1FeatureExtractor` with three extra layers instead of four, of depths 512,
    256 and 256, the last one's stride-2 convolution 2x2 instead of 3x3
    (`Conv2d_13_pointwise_2_Conv2d_4_2x2_s2_256`): on a 256x256 image the maps are 16, 8, 4,
    2 and 1 pixels wide. The TF OD API `EmbeddedSSDMobileNetV1FeatureExtractor`
    (`embedded_ssd_mobilenet_v1`, TF1 only), which takes only 256x256 images and
    `pad_to_multiple` 1; so does this one (a static image size other than 256x256 is an error;
    a dynamic one is not checked).

    One difference from the TF OD API: its TF1 body leaves depthwise kernels unregularized
    (slim `mobilenet_v1_arg_scope` without `regularize_depthwise`); here the body regularizes
    them as in `SSDMobileNetV1FeatureExtractor` (the regularization loss only differs).

    Args:
        depth_multiplier: float. Defaults to `1.0`.
        min_depth: int. Defaults to `16`.
        use_depthwise: bool. Defaults to `False`.
        use_explicit_padding: bool. Defaults to `False`.
        pad_to_multiple: int, must be 1 (TF OD API: "Embedded-specific SSD only supports
            `pad_to_multiple` of 1"). Defaults to `1`.
        conv_hyperparams, override_base_feature_extractor_hyperparams, backbone_weights,
            slim_layout: see `SSDMobileNetV1FeatureExtractor`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.EmbeddedSSDMobileNetV1FeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 256, 256, 3]))
    [f.shape[1] for f in extractor(images)]  # [16, 8, 4, 2, 1]
    ```

    Reference:
        TF OD API `object_detection/models/embedded_ssd_mobilenet_v1_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        use_depthwise=False,
        use_explicit_padding=False,
        pad_to_multiple=1,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        backbone_weights=None,
        slim_layout=False,
        **kwargs,
    ):
        if pad_to_multiple != 1:
            raise ValueError(
                f"EmbeddedSSDMobileNetV1FeatureExtractor: pad_to_multiple must be 1 (as in the "
                f"TF OD API's embedded_ssd_mobilenet_v1); got {pad_to_multiple!r}"
            )
        super().__init__(
            depth_multiplier,
            min_depth,
            BODY_ENDPOINTS,
            EXTRA_LAYER_DEPTHS,
            EXTRA_LAYER_KERNEL_SIZES,
            use_depthwise=use_depthwise,
            use_explicit_padding=use_explicit_padding,
            conv_hyperparams=conv_hyperparams,
            override_base_feature_extractor_hyperparams=(
                override_base_feature_extractor_hyperparams
            ),
            backbone_weights=backbone_weights,
            slim_layout=slim_layout,
            **kwargs,
        )

    def call(self, images, training=None):
        size = tuple(images.shape[1:3])
        if None not in size and size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"EmbeddedSSDMobileNetV1FeatureExtractor takes {IMAGE_SIZE}x{IMAGE_SIZE} images "
                f"only (as the TF OD API's embedded_ssd_mobilenet_v1); got {size[0]}x{size[1]}"
            )
        return super().call(images, training=training)

    def get_config(self):
        config = super().get_config()
        config["use_depthwise"] = self.use_depthwise
        return config
