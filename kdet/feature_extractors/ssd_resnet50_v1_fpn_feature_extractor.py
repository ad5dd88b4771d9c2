"""ResNet V1 FPN SSD feature extractors (ResNet50, 101, 152): the RetinaNet body, pyramid
levels 3..7."""

import functools

import keras

from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.kernel_regularization import regularized_clone
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.resnet_v1_body import CONV4_LAST_LAYERS
from kdet.feature_extractors.resnet_v1_body import RESNETS
from kdet.feature_extractors.resnet_v1_body import TF_OD_API_BATCH_NORM
from kdet.feature_extractors.resnet_v1_body import ResNetBodyOptions
from kdet.feature_extractors.resnet_v1_body import resnet_v1_body
from kdet.feature_extractors.resnet_v1_body import slim_resnet_v1_body
from kdet.feature_extractors.resnet_v1_body import tf_od_api_resnet_hyperparams
from kdet.feature_extractors.ssd_fpn_feature_extractor import SSDFPNFeatureExtractor

# Backbone map of each pyramid level of ResNet50: the outputs of its stages 2..5 (C2..C5).
LEVEL_ENDPOINTS = {
    2: "conv2_block3_out",
    3: "conv3_block4_out",
    4: "conv4_block6_out",
    5: "conv5_block3_out",
}
# ... of each ResNet depth (the TF OD API's `_RESNET_MODEL_OUTPUT_LAYERS`).
RESNET_LEVEL_ENDPOINTS = {
    depth: {
        **LEVEL_ENDPOINTS,
        3: "conv3_block8_out" if depth == 152 else "conv3_block4_out",
        4: CONV4_LAST_LAYERS[depth],
    }
    for depth in RESNETS
}


class SSDResNetV1FPNFeatureExtractor(ResNetBodyOptions, SSDFPNFeatureExtractor):
    """ResNet V1 body with a feature pyramid: the RetinaNet feature extractors.

    Subclasses set `depth` (50, 101 or 152). The body is the TF OD API's TF2 ResNet V1 of that
    depth (`kdet.feature_extractors.resnet_v1_body`: `keras.applications.ResNet{depth}`'s
    layout without convolution biases, the first max-pool with "SAME" padding, filters
    `max(int(filters * depth_multiplier), min_depth)`); levels 2..5 read the outputs of its
    stages 2..5 (C2..C5, strides 4..32: `conv2_block3_out`, `conv3_block4_out`,
    `conv4_block6_out` and `conv5_block3_out` in ResNet50; `RESNET_LEVEL_ENDPOINTS`). A
    `kdet.feature_extractors.FeaturePyramid` of depth
    `max(int(additional_layer_depth * depth_multiplier), min_depth)` turns levels
    `fpn_min_level..5` into a pyramid with plain 3x3 convolutions and adds stride-2 layers up
    to `fpn_max_level` (P6, P7). A 640x640 input gives maps of 80, 40, 20, 10 and 5 pixels.
    These are the TF OD API `SSDResNet{50,101,152}V1FpnKerasFeatureExtractor`
    (`ssd_resnet50_v1_fpn_keras`, …, the RetinaNet configs): their TF2 checkpoints load
    (`kdet.checkpoints`) and compute what they computed there. With `tf_od_api_body=False`
    (extractors saved before 2026-12) the body is the `keras.applications` ResNet as it is and
    the pyramid `additional_layer_depth` wide.

    With `slim_layout` (set by the config translator for the TF1 type names,
    `ssd_resnet50_v1_fpn` rather than `ssd_resnet50_v1_fpn_keras`) they are the TF OD API's TF1
    `SSDResnet{50,101,152}V1FpnFeatureExtractor` instead, whose TF1 checkpoints load by TF-Slim
    name: the body is TF-Slim's `resnet_v1` (`kdet.feature_extractors.resnet_v1_body.
    slim_resnet_v1_body`: each stage strides in its last unit, the root convolution keeps 64
    filters) run with `store_non_strided_activations`, so the level maps are each stage's
    output before its stride (the same strides 4..32 as above), and the pyramid's top-down
    pathway is the TF1 one (`FeaturePyramid(slim_layout=True)`).

    `conv_hyperparams` set up the pyramid (default `kdet.feature_extractors.fpn.
    DEFAULT_CONV_HYPERPARAMS`, the RetinaNet configs' values without their regularizer); their
    regularizer also goes to the body's kernels (the TF OD API body has its own L2 weight
    1e-4 otherwise). Without `override_base_feature_extractor_hyperparams` the body has the TF
    OD API ResNet's own settings (`kdet.feature_extractors.resnet_v1_body.
    tf_od_api_resnet_hyperparams`: variance-scaling kernels, batch norms of momentum 0.997 and
    epsilon 1e-5, ReLU); with it (the RetinaNet configs) the body is set up as the TF OD API's
    `keras_models/resnet_v1.py` does with `conv_hyperparams`: every kernel takes their
    initializer and regularizer, every batch norm theirs, and every ReLU their activation,
    e.g. ReLU6 for `activation: RELU_6`.

    `preprocess` subtracts the ImageNet channel means in RGB order, the TF OD API rule its
    checkpoints were trained with. The `keras.applications` ImageNet weights were trained on
    BGR inputs ("caffe" preprocessing), so with `backbone_weights="imagenet"` the first layer
    sees its colour channels swapped until fine-tuning adapts it; they load into the TF OD API
    body (each convolution bias folded into the batch norm after it) at depth multiplier 1.

    Args:
        fpn_min_level: int. Finest pyramid level, one of 2..5. Defaults to `3`.
        fpn_max_level: int. Coarsest pyramid level; levels above 5 are stride-2 layers.
            Defaults to `7`.
        additional_layer_depth: int. Channels of every pyramid map before the depth
            multiplier. Defaults to `256`.
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor`. Defaults to
            `None`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            the default above; e.g. a regularizer `keras.regularizers.L2(0.5 * 4e-4)` for
            `l2_regularizer { weight: 0.0004 }`. Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams` too. Defaults to `False`.
        depth_multiplier: float. Width multiplier of the body and the pyramid (TF OD API
            `depth_multiplier`). Defaults to `1.0`.
        min_depth: int. The fewest filters of a body convolution and of the pyramid (TF OD API
            `min_depth`). Defaults to `16`.
        tf_od_api_body: bool. The TF OD API's body and pyramid depth (see above); `False`:
            the `keras.applications` body. Defaults to `True`.
        slim_layout: bool. The TF OD API's TF1 (TF-Slim) body and pyramid (see above; needs
            `tf_od_api_body` and no `backbone_weights`). Defaults to `False`.
        **kwargs: `kernel_regularizer` (replacing that of `conv_hyperparams`, the argument of
            extractors saved before it) and `keras.layers.Layer` arguments.

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1708.02002); TF OD API
        `object_detection/models/ssd_resnet_v1_fpn_keras_feature_extractor.py`.
    """

    depth = None

    def __init__(
        self,
        fpn_min_level=3,
        fpn_max_level=7,
        additional_layer_depth=256,
        backbone_weights=None,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        depth_multiplier=1.0,
        min_depth=16,
        tf_od_api_body=True,
        slim_layout=False,
        **kwargs,
    ):
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.tf_od_api_body = bool(tf_od_api_body)
        self.slim_layout = bool(slim_layout)
        if self.slim_layout and (not self.tf_od_api_body or backbone_weights is not None):
            raise ValueError(
                "slim_layout builds the TF OD API's TF1 body: it needs tf_od_api_body=True and "
                f"no backbone_weights; got tf_od_api_body={tf_od_api_body}, "
                f"backbone_weights={backbone_weights!r}"
            )
        super().__init__(
            fpn_min_level,
            fpn_max_level,
            additional_layer_depth,
            backbone_weights=backbone_weights,
            conv_hyperparams=conv_hyperparams,
            override_base_feature_extractor_hyperparams=(
                override_base_feature_extractor_hyperparams
            ),
            **kwargs,
        )
        endpoints = self.body_endpoints(RESNET_LEVEL_ENDPOINTS[self.depth])
        resnet = self._tf_od_api_body() if self.tf_od_api_body else self._keras_body()
        outputs = [resnet.get_layer(name).output for name in endpoints]
        self.attach_body(
            keras.Model(resnet.input, outputs, name=f"ResNet{self.depth}"),
            slim_layout=self.slim_layout,
        )

    @property
    def pyramid_depth(self):
        """Channels of every pyramid map: `max(int(additional_layer_depth *
        depth_multiplier), min_depth)` (TF OD API `_depth_fn`), `additional_layer_depth`
        without `tf_od_api_body`."""
        if not self.tf_od_api_body:
            return self.additional_layer_depth
        return max(int(self.additional_layer_depth * self.depth_multiplier), self.min_depth)

    def _tf_od_api_body(self):
        """The TF OD API's ResNet V1, set up by `body_hyperparams` or by the TF OD API
        ResNet's own settings with the extractor's kernel regularizer."""
        hyperparams = self.body_hyperparams or tf_od_api_resnet_hyperparams().replace(
            kernel_regularizer=self.kernel_regularizer
        )
        if self.slim_layout:
            if self.body_hyperparams is not None and hyperparams.batch_norm is not None:
                # Slim's `resnet_arg_scope` hands its convolutions their batch-norm parameters
                # (`normalizer_params`), which the conv_hyperparams' arg scope leaves in place.
                hyperparams = hyperparams.replace(batch_norm=dict(TF_OD_API_BATCH_NORM))
            return slim_resnet_v1_body(
                self.depth,
                self.depth_multiplier,
                self.min_depth,
                hyperparams,
                store_non_strided_activations=True,
            )
        return resnet_v1_body(
            self.depth,
            self.depth_multiplier,
            self.min_depth,
            hyperparams=hyperparams,
            weights=self.backbone_weights,
        )

    def _keras_body(self):
        """The `keras.applications` ResNet, as extractors saved before 2026-12 had it."""
        if self.depth_multiplier != 1.0:
            raise ValueError(
                f"depth_multiplier is {self.depth_multiplier}, but the keras.applications body "
                "(tf_od_api_body=False) has none: use tf_od_api_body=True"
            )
        return clone_body(
            RESNETS[self.depth](
                input_shape=(None, None, 3), include_top=False, weights=self.backbone_weights
            ),
            clone_function=functools.partial(
                regularized_clone, kernel_regularizer=self.kernel_regularizer
            ),
            hyperparams=self.body_hyperparams,
            keep_weights=self.backbone_weights is not None,
        )



@register_feature_extractor("ssd_resnet50_v1_fpn")
class SSDResNet50V1FPNFeatureExtractor(SSDResNetV1FPNFeatureExtractor):
    """ResNet50 V1 FPN (RetinaNet50): TF OD API `ssd_resnet50_v1_fpn_keras` (TF1
    `ssd_resnet50_v1_fpn`). See `SSDResNetV1FPNFeatureExtractor`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDResNet50V1FPNFeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 640, 640, 3]))
    [f.shape[1] for f in extractor(images)]  # [80, 40, 20, 10, 5]
    ```
    """

    depth = 50


@register_feature_extractor("ssd_resnet101_v1_fpn")
class SSDResNet101V1FPNFeatureExtractor(SSDResNetV1FPNFeatureExtractor):
    """ResNet101 V1 FPN (RetinaNet101): TF OD API `ssd_resnet101_v1_fpn_keras` (TF1
    `ssd_resnet101_v1_fpn`). See `SSDResNetV1FPNFeatureExtractor`."""

    depth = 101


@register_feature_extractor("ssd_resnet152_v1_fpn")
class SSDResNet152V1FPNFeatureExtractor(SSDResNetV1FPNFeatureExtractor):
    """ResNet152 V1 FPN (RetinaNet152): TF OD API `ssd_resnet152_v1_fpn_keras` (TF1
    `ssd_resnet152_v1_fpn`). See `SSDResNetV1FPNFeatureExtractor`."""

    depth = 152
