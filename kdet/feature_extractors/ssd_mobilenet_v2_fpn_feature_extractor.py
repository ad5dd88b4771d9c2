"""MobileNetV2 FPN (FPNLite) SSD feature extractor: pyramid levels 3..7 on a MobileNetV2 body."""

import keras

from kdet.feature_extractors.mobilenet_v2_body import make_divisible_by_8
from kdet.feature_extractors.mobilenet_v2_body import mobilenet_v2_body
from kdet.feature_extractors.mobilenet_v2_body import tf_od_api_last_conv_depth
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_fpn_feature_extractor import (
    SSDMobileNetFPNFeatureExtractor,
)

# Backbone map of each pyramid level: TF OD API layer_4, layer_7, layer_14 and layer_19.
LEVEL_ENDPOINTS = {2: "block_2_add", 3: "block_5_add", 4: "block_12_add", 5: "out_relu"}


@register_feature_extractor("ssd_mobilenet_v2_fpn")
class SSDMobileNetV2FPNFeatureExtractor(SSDMobileNetFPNFeatureExtractor):
    """MobileNetV2 body with a feature pyramid: SSD MobileNetV2 FPN and FPNLite.

    The body is the "same"-padded `keras.applications.MobileNetV2` of
    `SSDMobileNetV2FeatureExtractor`; levels 2..5 read `block_2_add`, `block_5_add`,
    `block_12_add` and `out_relu` (TF OD API `layer_4`, `layer_7`, `layer_14`, `layer_19`,
    strides 4..32). A `kdet.feature_extractors.FeaturePyramid` of depth
    `max(additional_layer_depth * depth_multiplier, min_depth)` turns levels
    `fpn_min_level..5` into a pyramid and adds stride-2 layers up to `fpn_max_level`. With
    `use_depthwise` (FPNLite, the `ssd_mobilenet_v2_fpnlite` configs) the pyramid's 3x3
    convolutions are separable. A 320x320 input gives maps of 40, 20, 10, 5 and 3 pixels.

    `conv_hyperparams` set up the pyramid; their regularizer also goes to the body's kernels
    (depthwise ones with `regularize_depthwise`; the TF OD API body has its own fixed L2 weight
    4e-5, the one of the sample configs). With `override_base_feature_extractor_hyperparams`
    (the `ssd_mobilenet_v2_fpnlite` configs) the body is set up with `conv_hyperparams` as
    the TF OD API does: see `kdet.feature_extractors.mobilenet_v2_body`.

    `depth_multiplier` scales the body like `alpha` of `keras.applications.MobileNetV2`, and
    its last convolution `Conv_1` (1280 filters at 1) by the TF OD API rule
    (`kdet.feature_extractors.mobilenet_v2_body.tf_od_api_last_conv_depth`); `min_depth`
    bounds the pyramid depth and the body's convolutions but its expansions, as in the TF OD
    API's TF2 extractor (`ssd_mobilenet_v2_fpn_keras`: the FPNLite `conv_defs` of a 256-filter
    `Conv_1` is never applied there: its checkpoints have 1280). Its TF1 (slim) extractor
    (`ssd_mobilenet_v2_fpn`) applies them: with `slim_layout` `Conv_1` has
    `max(256 × depth_multiplier, min_depth)` filters with `use_depthwise` (rounded to a
    multiple of 8), `max(1280 × depth_multiplier, min_depth)` without, the body has
    TF-Slim's residuals (see `kdet.feature_extractors.mobilenet_v2_body`) and the pyramid the
    TF1 top-down pathway (`FeaturePyramid(slim_layout=True)`).

    Args:
        depth_multiplier: float. Width multiplier of the body and the pyramid. Defaults to
            `1.0`.
        min_depth: int. Lower bound on the pyramid depth and on the body's convolutions but
            its expansions. Defaults to `16`.
        fpn_min_level: int. Finest pyramid level, one of 2..5. Defaults to `3`.
        fpn_max_level: int. Coarsest pyramid level; levels above 5 are stride-2 layers.
            Defaults to `7`.
        additional_layer_depth: int. Channels of the pyramid maps before the depth
            multiplier. Defaults to `128` (the FPNLite configs; the TF OD API default is 256).
        use_depthwise: bool. FPNLite: separable pyramid convolutions. Defaults to `True`.
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor`. Defaults to
            `None`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            `MOBILENET_FPN_CONV_HYPERPARAMS` (`RandomNormal(stddev=0.01)`, batch norm momentum
            0.997, epsilon 1e-3 with scale, ReLU6, no regularizer); e.g. a regularizer
            `keras.regularizers.L2(0.5 * w)` for `l2_regularizer { weight: w }`. Defaults to
            `None`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams` too. Defaults to `False`.
        tf_od_api_body_depths: bool. The body's depths by the TF OD API rule above; `False`:
            kdet's earlier rule (no `min_depth` in the body, `Conv_1` of 256 × the depth
            multiplier with `use_depthwise`), which extractors saved before 2026-12 load with.
            Defaults to `True`.
        slim_layout: bool. The layout of the TF OD API's TF1 (TF-Slim) `ssd_mobilenet_v2_fpn`
            rather than its TF2 `ssd_mobilenet_v2_fpn_keras`: with `tf_od_api_body_depths` its
            body (see above), and its pyramid's top-down pathway. The config translator sets
            it for `type: "ssd_mobilenet_v2_fpn"`.
            Defaults to `False`.
        **kwargs: `kernel_regularizer` / `regularize_depthwise` (replacing those of
            `conv_hyperparams`, the arguments of extractors saved before it) and
            `keras.layers.Layer` arguments.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDMobileNetV2FPNFeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 320, 320, 3]))
    [f.shape[1] for f in extractor(images)]  # [40, 20, 10, 5, 3]
    ```

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144); TF OD API
        `object_detection/models/ssd_mobilenet_v2_fpn_keras_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        fpn_min_level=3,
        fpn_max_level=7,
        additional_layer_depth=128,
        use_depthwise=True,
        backbone_weights=None,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
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
        body = _mobilenet_v2_fpn_body(
            depth_multiplier,
            min_depth,
            use_depthwise,
            self.tf_od_api_body_depths,
            self.slim_layout,
            backbone_weights,
            self.body_endpoints(LEVEL_ENDPOINTS),
            self.kernel_regularizer,
            self.regularize_depthwise,
            self.body_hyperparams,
        )
        self.attach_body(body, slim_layout=self.slim_layout)

    def get_config(self):
        config = super().get_config()
        config["tf_od_api_body_depths"] = self.tf_od_api_body_depths
        config["slim_layout"] = self.slim_layout
        return config

    @classmethod
    def from_config(cls, config):
        # Extractors saved before 2026-12 had kdet's earlier body depths.
        return cls(**{"tf_od_api_body_depths": False, **config})


def _mobilenet_v2_fpn_body(
    depth_multiplier,
    min_depth,
    use_depthwise,
    tf_od_api_body_depths,
    slim_layout,
    weights,
    endpoints,
    kernel_regularizer,
    regularize_depthwise,
    hyperparams=None,
):
    """The MobileNetV2 body with outputs `endpoints`, its depths by the TF OD API's rule (TF2,
    or TF1 with `slim_layout`), or by kdet's earlier one (see `tf_od_api_body_depths`)."""
    if tf_od_api_body_depths and slim_layout:
        # `min_depth` bounds Conv_1 too (see `mobilenet_v2_body`).
        depths = {
            "min_depth": min_depth,
            "last_conv_depth": make_divisible_by_8(
                (256 if use_depthwise else 1280) * depth_multiplier
            ),
            "slim_layout": True,
        }
    elif tf_od_api_body_depths:
        depths = {
            "min_depth": min_depth,
            "last_conv_depth": tf_od_api_last_conv_depth(depth_multiplier),
        }
    else:
        last_conv_depth = 256 if use_depthwise else 1280
        if depth_multiplier < 1.0:
            last_conv_depth = make_divisible_by_8(last_conv_depth * depth_multiplier)
        depths = {"last_conv_depth": last_conv_depth}
    body = mobilenet_v2_body(
        depth_multiplier, weights, kernel_regularizer, regularize_depthwise, hyperparams,
        **depths,
    )
    return keras.Model(
        body.input, [body.get_layer(name).output for name in endpoints], name="MobilenetV2"
    )
