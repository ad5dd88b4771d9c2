"""MobileNetV1 FPN SSD feature extractor: pyramid levels 3..7 on a MobileNetV1 body."""

import keras

from kdet.feature_extractors.mobilenet_v1_body import mobilenet_v1_body
from kdet.feature_extractors.mobilenet_v1_body import mobilenet_v1_filters
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_fpn_feature_extractor import (
    SSDMobileNetFPNFeatureExtractor,
)

# Backbone map of each pyramid level: TF OD API Conv2d_3, 5, 11 and 13_pointwise.
LEVEL_ENDPOINTS = {
    2: "conv_pw_3_relu",
    3: "conv_pw_5_relu",
    4: "conv_pw_11_relu",
    5: "conv_pw_13_relu",
}
# TF OD API `_create_modified_mobilenet_config` (its `conv_defs`): with use_depthwise, the
# last two pointwise convolutions have 512 and 256 filters (before the depth multiplier)
# instead of 1024.
DEPTHWISE_POINTWISE_FILTERS = {"conv_pw_12": 512, "conv_pw_13": 256}
# The TF OD API's own MobileNetV1 settings without override_base_feature_extractor_hyperparams
# (keras_models/mobilenet_v1.py).
_BODY_KERNEL_STDDEV = 0.09
_BODY_BATCH_NORM_MOMENTUM = 0.9997


@register_feature_extractor("ssd_mobilenet_v1_fpn")
class SSDMobileNetV1FPNFeatureExtractor(SSDMobileNetFPNFeatureExtractor):
    """MobileNetV1 body with a feature pyramid: the SSD MobileNetV1 FPN (RetinaNet) extractor.

    The body is `keras.applications.MobileNet` (`alpha=depth_multiplier`) with the TF OD API's
    padding (see `kdet.feature_extractors.mobilenet_v1_body`); levels 2..5 read
    `conv_pw_3_relu`, `conv_pw_5_relu`, `conv_pw_11_relu` and `conv_pw_13_relu` (TF OD API
    `Conv2d_3_pointwise`, `_5_`, `_11_`, `_13_`, strides 4..32). A
    `kdet.feature_extractors.FeaturePyramid` of depth
    `max(additional_layer_depth * depth_multiplier, min_depth)` turns levels
    `fpn_min_level..5` into a pyramid and adds stride-2 layers up to `fpn_max_level`. A
    640x640 input gives maps of 80, 40, 20, 10 and 5 pixels. This is the TF OD API
    `SSDMobileNetV1FpnKerasFeatureExtractor` (`ssd_mobilenet_v1_fpn_keras`, and the TF1 name
    `ssd_mobilenet_v1_fpn` of the `ssd_mobilenet_v1_fpn_shared_box_predictor` configs).

    The body's batch norms have momentum 0.9997 and its kernels start from
    `TruncatedNormal(stddev=0.09)`, the TF OD API's MobileNetV1 settings; with
    `override_base_feature_extractor_hyperparams` the body is set up by `conv_hyperparams`
    instead (initializer, regularizer, batch norm, activation; see
    `kdet.feature_extractors.mobilenet_v1_body`). The `conv_hyperparams` regularizer applies
    to all convolution kernels of the body (depthwise ones included, as the TF OD API's body
    regularizes them) and to the pyramid's.

    `depth_multiplier` and `min_depth` set the body's depths as in the TF OD API's Keras body
    (`ssd_mobilenet_v1_fpn_keras`, its TF2 checkpoints): it scales `keras.applications.
    MobileNet(alpha=depth_multiplier)`'s convolutions by the multiplier a second time and
    bounds them by `min_depth`; with `slim_layout` as its TF1 (TF-Slim) body
    (`ssd_mobilenet_v1_fpn`), which scales once and bounds by `min_depth` (see
    `kdet.feature_extractors.mobilenet_v1_body.mobilenet_v1_filters`). At depth multiplier 1
    all are Keras's MobileNet.

    Args:
        depth_multiplier: float. Width multiplier of the body and the pyramid. Defaults to
            `1.0`.
        min_depth: int. Lower bound on the pyramid depth and the body's convolutions.
            Defaults to `16`.
        fpn_min_level: int. Finest pyramid level, one of 2..5. Defaults to `3`.
        fpn_max_level: int. Coarsest pyramid level; levels above 5 are stride-2 layers.
            Defaults to `7`.
        additional_layer_depth: int. Channels of the pyramid maps before the depth
            multiplier. Defaults to `256`.
        use_depthwise: bool. Separable pyramid convolutions, and `conv_pw_12` / `conv_pw_13`
            of 512 / 256 filters instead of 1024, as in the TF OD API. Defaults to `False`.
        use_explicit_padding: bool. One-pixel padding and "valid" convolutions instead of
            "same" padding in the body's stride-2 convolutions and the pyramid's stride-2
            layers (TF OD API `use_explicit_padding`). Defaults to `False`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams` (the TF OD API field of this name). Defaults to `False`.
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor` (Keras's
            MobileNet: its depths must be the body's, so depth multiplier 1 or
            `tf_od_api_body_depths=False`). With `use_depthwise` the narrower `conv_dw_13`,
            `conv_pw_12` and `conv_pw_13` start from random weights. Defaults to `None`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the pyramid, or
            `None` for `MOBILENET_FPN_CONV_HYPERPARAMS` (`RandomNormal(stddev=0.01)`, batch
            norm momentum 0.997, epsilon 1e-3 with scale, ReLU6, no regularizer); e.g. a
            regularizer `keras.regularizers.L2(0.5 * 4e-5)` for
            `l2_regularizer { weight: 0.00004 }`. Defaults to `None`.
        tf_od_api_body_depths: bool. The body's depths by the TF OD API rule above; `False`:
            Keras's (the multiplier once, no `min_depth` in the body), which extractors saved
            before 2026-12 load with. Defaults to `True`.
        slim_layout: bool. The layout of the TF OD API's TF1 (TF-Slim) `ssd_mobilenet_v1_fpn`
            rather than its TF2 `ssd_mobilenet_v1_fpn_keras`: with `tf_od_api_body_depths` its
            body depths (see above; only differ below depth multiplier 1), and its pyramid's
            top-down pathway (`FeaturePyramid(slim_layout=True)`). The config translator sets
            it for `type: "ssd_mobilenet_v1_fpn"`. Defaults to `False`.
        **kwargs: `kernel_regularizer` / `regularize_depthwise` (replacing those of
            `conv_hyperparams`, the arguments of extractors saved before it) and
            `keras.layers.Layer` arguments.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDMobileNetV1FPNFeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 640, 640, 3]))
    [f.shape[1] for f in extractor(images)]  # [80, 40, 20, 10, 5]
    ```

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1708.02002); TF OD API
        `object_detection/models/ssd_mobilenet_v1_fpn_keras_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        fpn_min_level=3,
        fpn_max_level=7,
        additional_layer_depth=256,
        use_depthwise=False,
        use_explicit_padding=False,
        override_base_feature_extractor_hyperparams=False,
        backbone_weights=None,
        conv_hyperparams=None,
        tf_od_api_body_depths=True,
        slim_layout=False,
        **kwargs,
    ):
        self.tf_od_api_body_depths = bool(tf_od_api_body_depths)
        self.slim_layout = bool(slim_layout)
        super().__init__(
            depth_multiplier,
            min_depth,
            fpn_min_level,
            fpn_max_level,
            additional_layer_depth,
            use_depthwise,
            backbone_weights=backbone_weights,
            conv_hyperparams=conv_hyperparams,
            override_base_feature_extractor_hyperparams=(
                override_base_feature_extractor_hyperparams
            ),
            **kwargs,
        )
        self.use_explicit_padding = use_explicit_padding
        body = mobilenet_v1_body(
            self.body_endpoints(LEVEL_ENDPOINTS),
            depth_multiplier,
            backbone_weights,
            conv_filters=self._body_filters(backbone_weights),
            use_explicit_padding=use_explicit_padding,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=_BODY_KERNEL_STDDEV),
            kernel_regularizer=self.kernel_regularizer,
            batch_norm_momentum=_BODY_BATCH_NORM_MOMENTUM,
            hyperparams=self.body_hyperparams,
        )
        self.attach_body(
            body, use_explicit_padding=use_explicit_padding, slim_layout=self.slim_layout
        )

    def _body_filters(self, backbone_weights):
        """`{convolution name: filters}` of the body (see `tf_od_api_body_depths`)."""
        conv_defs = DEPTHWISE_POINTWISE_FILTERS if self.use_depthwise else None
        rule = "keras"
        if self.tf_od_api_body_depths:
            rule = "tf_od_api_tf1" if self.slim_layout else "tf_od_api_tf2"
        filters = mobilenet_v1_filters(self.depth_multiplier, conv_defs, self.min_depth, rule)
        keras_filters = mobilenet_v1_filters(self.depth_multiplier, conv_defs, rule="keras")
        if backbone_weights is not None and filters != keras_filters:
            raise ValueError(
                f"{backbone_weights} weights are Keras's MobileNet at depth multiplier "
                f"{self.depth_multiplier}; the TF OD API's body depths ({rule}, "
                f"min_depth={self.min_depth}) differ from its: use depth multiplier 1, or "
                "Keras's depths (tf_od_api_body_depths=False)"
            )
        return filters

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_explicit_padding": self.use_explicit_padding,
                "tf_od_api_body_depths": self.tf_od_api_body_depths,
                "slim_layout": self.slim_layout,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Extractors saved before 2026-12 had Keras's body depths.
        return cls(**{"tf_od_api_body_depths": False, **config})
