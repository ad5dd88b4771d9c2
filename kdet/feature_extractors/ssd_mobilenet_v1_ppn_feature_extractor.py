"""MobileNetV1 PPN SSD feature extractor: Conv2d_11_pointwise and five max-pooled copies."""

import keras

from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_v1_feature_extractor import BODY_ENDPOINTS
from kdet.feature_extractors.ssd_mobilenet_v1_feature_extractor import (
    SSDMobileNetV1FeatureExtractorBase,
)

# Feature maps of the pooling pyramid: the body map and this many stride-2 max poolings of it.
NUM_POOLED_MAPS = 5


@register_feature_extractor("ssd_mobilenet_v1_ppn")
class SSDMobileNetV1PPNFeatureExtractor(SSDMobileNetV1FeatureExtractorBase):
    """MobileNetV1 body with a pooling pyramid: the six feature maps of SSD MobileNetV1 PPN.

    The body is the one of `SSDMobileNetV1FeatureExtractor` up to `conv_pw_11_relu` (TF OD API
    `Conv2d_11_pointwise`, stride 16). Five 2x2 stride-2 max poolings ("same" padding,
    `MaxPool2d_0_2x2` ... `MaxPool2d_4_2x2`) of it follow, each of the previous one: the
    pooling pyramid (PPN) of the TF OD API `SSDMobileNetV1PpnFeatureExtractor`
    (`pooling_pyramid_feature_maps` with `base_feature_map_depth` 0 and 6 layers: no weights
    beyond the body's, every map of the body map's depth, for the weight-shared box
    predictor). At 300x300 the maps are 19, 10, 5, 3, 2 and 1 pixels wide.

    The TF1 (TF-Slim) extractor builds MobileNetV1 up to `Conv2d_13_pointwise` and reads only
    `Conv2d_11_pointwise`: its checkpoints hold `Conv2d_12` and `Conv2d_13` weights this
    extractor has no layers for (`kdet.checkpoints` reports them unread).

    Args:
        depth_multiplier: float. Width multiplier of the body. Defaults to `1.0`.
        min_depth: int. Lower bound on the body's depths. Defaults to `16`.
        use_explicit_padding: bool. See `SSDMobileNetV1FeatureExtractor` (the poolings keep
            "same" padding, as in the TF OD API). Defaults to `False`.
        pad_to_multiple: int. See `SSDMobileNetV1FeatureExtractor`. Defaults to `1`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None`; used
            only with `override_base_feature_extractor_hyperparams` (the pyramid has no
            convolutions). Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams`. Defaults to `False`.
        backbone_weights: `None` or `"imagenet"`, see `SSDMobileNetV1FeatureExtractor`.
            Defaults to `None`.
        slim_layout: bool. The TF1 `ssd_mobilenet_v1_ppn` body, see
            `SSDMobileNetV1FeatureExtractor`. Defaults to `False`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDMobileNetV1PPNFeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 300, 300, 3]))
    [f.shape[1] for f in extractor(images)]  # [19, 10, 5, 3, 2, 1]
    ```

    Reference:
        [Jin et al., 2018](https://arxiv.org/abs/1807.03284); TF OD API
        `object_detection/models/ssd_mobilenet_v1_ppn_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        use_explicit_padding=False,
        pad_to_multiple=1,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        backbone_weights=None,
        slim_layout=False,
        **kwargs,
    ):
        super().__init__(
            depth_multiplier,
            min_depth,
            BODY_ENDPOINTS[:1],
            (),
            (),
            use_explicit_padding=use_explicit_padding,
            pad_to_multiple=pad_to_multiple,
            conv_hyperparams=conv_hyperparams,
            override_base_feature_extractor_hyperparams=(
                override_base_feature_extractor_hyperparams
            ),
            backbone_weights=backbone_weights,
            slim_layout=slim_layout,
            **kwargs,
        )
        self.poolings = [
            keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"MaxPool2d_{i}_2x2")
            for i in range(NUM_POOLED_MAPS)
        ]

    def call(self, images, training=None):
        feature_maps = super().call(images, training=training)
        for pooling in self.poolings:
            feature_maps.append(pooling(feature_maps[-1]))
        return feature_maps
