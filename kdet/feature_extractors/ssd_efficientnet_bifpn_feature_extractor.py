"""EfficientNet + BiFPN SSD feature extractors (EfficientDet D0-D7)."""

import keras
from keras.src.applications import efficientnet as keras_efficientnet

from kdet.feature_extractors.bifpn import DEFAULT_CONV_HYPERPARAMS
from kdet.feature_extractors.bifpn import BiFPN
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_feature_extractor import SSDFeatureExtractor
from kdet.feature_extractors.ssd_feature_extractor import check_pad_to_multiple
from kdet.feature_extractors.ssd_feature_extractor import extractor_hyperparams
from kdet.feature_extractors.ssd_feature_extractor import pad_to_multiple
from kdet.layers.fused_batch_normalization import clone_with_fused_batch_norm

# `version: (width_coefficient, depth_coefficient, default image size)` of the EfficientNets
# (the TF OD API's `efficientnet_model.MODEL_CONFIGS`, keras.applications' EfficientNetB0-B7).
EFFICIENTNETS = {
    "efficientnet-b0": (1.0, 1.0, 224),
    "efficientnet-b1": (1.0, 1.1, 240),
    "efficientnet-b2": (1.1, 1.2, 260),
    "efficientnet-b3": (1.2, 1.4, 300),
    "efficientnet-b4": (1.4, 1.8, 380),
    "efficientnet-b5": (1.6, 2.2, 456),
    "efficientnet-b6": (1.8, 2.6, 528),
    "efficientnet-b7": (2.0, 3.1, 600),
}
# Body map of each pyramid level, keras.applications names of the TF OD API's
# `_EFFICIENTNET_LEVEL_ENDPOINTS` (`stack_1/block_1/add`, ...: the same block in every version,
# not always the last of its stage).
LEVEL_ENDPOINTS = {
    1: "block1a_project_bn",
    2: "block2b_add",
    3: "block3b_add",
    4: "block5c_add",
    5: "block7a_project_bn",
}
# L2 weight of the TF OD API EfficientNet's kernels and biases (`ModelConfig.weight_decay`,
# Keras convention), unless `override_base_feature_extractor_hyperparams`.
EFFICIENTNET_WEIGHT_DECAY = 5e-6
# ImageNet channel means and standard deviations of the TF OD API's EfficientDet preprocessing.
CHANNEL_MEANS = (0.485, 0.456, 0.406)
CHANNEL_STDDEVS = (0.229, 0.224, 0.225)


class SSDEfficientNetBiFPNFeatureExtractor(SSDFeatureExtractor):
    """EfficientNet body with a BiFPN: the EfficientDet feature extractors.

    Subclasses set `efficientnet_version` and the default BiFPN iterations and filters
    (`SSDEfficientNetB0BiFPNFeatureExtractor`, ... `B7`). The body is
    `keras.applications`' EfficientNet of that version with the layout of the TF OD API's
    (`official.legacy.image_classification.efficientnet`): the same blocks, squeeze-and-
    excitation, drop connect, batch norms (momentum 0.99, epsilon 1e-3) and weight order,
    from the stem on (kdet's `preprocess` normalizes, not Keras' rescaling layers) and with
    "same"-padded stride-2 convolutions (Keras pads them explicitly, which differs from "same"
    on odd sides). Levels `bifpn_min_level..min(bifpn_max_level, 5)` read `LEVEL_ENDPOINTS`
    (strides 8, 16, 32 for levels 3..5); a `kdet.feature_extractors.BiFPN` of
    `max(bifpn_num_filters, min_depth)` filters makes levels `bifpn_min_level..
    bifpn_max_level` with `bifpn_num_iterations` passes, fusing by `bifpn_combine_method`.
    A 512x512 input gives maps of 64, 32, 16, 8 and 4 pixels.

    These are the TF OD API `SSDEfficientNetB{0..7}BiFPNKerasFeatureExtractor`
    (`ssd_efficientnet-b0_bifpn_keras`, ..., the EfficientDet D0-D7 configs): their TF2
    checkpoints load (`kdet.checkpoints`) and compute what they computed there, and so does the
    body from a TF2 classification checkpoint of the EfficientNet (the configs'
    `fine_tune_checkpoint_type: "classification"`; its last blocks, top and classifier are
    reported unused, as the TF OD API never computes with them). The TF OD API
    takes only `depth_multiplier: 1`; kdet multiplies the EfficientNet's width coefficient by
    it (small models for tests: 0.25 makes b0's widest block 480 channels instead of 1920).

    `conv_hyperparams` set up the BiFPN (default `kdet.feature_extractors.bifpn.
    DEFAULT_CONV_HYPERPARAMS`). The body keeps its own settings, with an L2 weight
    `EFFICIENTNET_WEIGHT_DECAY` on every kernel and bias; with
    `override_base_feature_extractor_hyperparams` the regularizer of `conv_hyperparams`
    replaces it (the only setting the TF OD API overrides in this body).

    `preprocess` scales pixels to 0..1 and normalizes with the ImageNet means and standard
    deviations (`CHANNEL_MEANS`, `CHANNEL_STDDEVS`), as the TF OD API does.

    Args:
        bifpn_min_level: int. Finest pyramid level, one of 1..5. Defaults to `3`.
        bifpn_max_level: int. Coarsest pyramid level; levels above 5 are max-pooled.
            Defaults to `7`.
        bifpn_num_iterations: int. BiFPN passes; `None`: the version's (3 for b0 ... 8 for
            b6 and b7). Defaults to `None`.
        bifpn_num_filters: int. BiFPN channels; `None`: the version's (64 for b0 ... 384).
            Defaults to `None`.
        bifpn_combine_method: `"fast_attention"`, `"sum"`, `"weighted_sum"` or
            `"attention"`, see `kdet.feature_extractors.bifpn.WeightedFeatureFusion`.
            Defaults to `"fast_attention"`.
        depth_multiplier: float. Multiplies the EfficientNet's width coefficient (kdet only,
            see above). Defaults to `1.0`.
        min_depth: int. The fewest BiFPN filters. Defaults to `16`.
        pad_to_multiple: int. Zero-pad the preprocessed images bottom/right to a multiple of
            it (TF OD API `pad_to_multiple`). Defaults to `1`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the BiFPN, or
            `None` for the default above. Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. The body's kernels and biases take
            the regularizer of `conv_hyperparams`. Defaults to `False`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` weights, width
            `depth_multiplier` 1 only), see `SSDFeatureExtractor`. Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Reference:
        [Tan et al., 2020](https://arxiv.org/abs/1911.09070); TF OD API
        `object_detection/models/ssd_efficientnet_bifpn_feature_extractor.py`.
    """

    efficientnet_version = None
    default_bifpn_num_iterations = None
    default_bifpn_num_filters = None

    def __init__(
        self,
        bifpn_min_level=3,
        bifpn_max_level=7,
        bifpn_num_iterations=None,
        bifpn_num_filters=None,
        bifpn_combine_method="fast_attention",
        depth_multiplier=1.0,
        min_depth=16,
        pad_to_multiple=1,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        backbone_weights=None,
        **kwargs,
    ):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        if bifpn_min_level not in LEVEL_ENDPOINTS or bifpn_min_level > bifpn_max_level:
            raise ValueError(
                f"bifpn_min_level must be one of the EfficientNet levels "
                f"{sorted(LEVEL_ENDPOINTS)} and at most bifpn_max_level; got "
                f"bifpn_min_level={bifpn_min_level}, bifpn_max_level={bifpn_max_level}"
            )
        if backbone_weights is not None and depth_multiplier != 1.0:
            raise ValueError(
                f"backbone_weights={backbone_weights!r} exist for depth_multiplier 1.0 only; got "
                f"{depth_multiplier}"
            )
        self.bifpn_min_level = bifpn_min_level
        self.bifpn_max_level = bifpn_max_level
        self.bifpn_num_iterations = bifpn_num_iterations or self.default_bifpn_num_iterations
        self.bifpn_num_filters = bifpn_num_filters or self.default_bifpn_num_filters
        self.bifpn_combine_method = bifpn_combine_method
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.pad_to_multiple = check_pad_to_multiple(pad_to_multiple)
        self.conv_hyperparams = extractor_hyperparams(conv_hyperparams, DEFAULT_CONV_HYPERPARAMS)
        self.override_base_feature_extractor_hyperparams = bool(
            override_base_feature_extractor_hyperparams
        )
        if self.override_base_feature_extractor_hyperparams:
            regularizer = self.conv_hyperparams.kernel_regularizer
        else:
            regularizer = keras.regularizers.L2(EFFICIENTNET_WEIGHT_DECAY)
        top_level = min(bifpn_max_level, max(LEVEL_ENDPOINTS))
        self.body = efficientnet_body(
            self.efficientnet_version,
            [LEVEL_ENDPOINTS[level] for level in range(bifpn_min_level, top_level + 1)],
            depth_multiplier=depth_multiplier,
            regularizer=regularizer,
            weights=backbone_weights,
        )
        self.bifpn = BiFPN(
            bifpn_min_level,
            bifpn_max_level,
            num_iterations=self.bifpn_num_iterations,
            num_filters=max(self.bifpn_num_filters, min_depth),
            combine_method=bifpn_combine_method,
            conv_hyperparams=self.conv_hyperparams,
            name="bifpn",
        )

    def preprocess(self, images):
        """float32 `[batch, height, width, 3]` pixels 0..255 → `(x / 255 - mean) / stddev`."""
        return (images / 255.0 - CHANNEL_MEANS) / CHANNEL_STDDEVS

    def build(self, input_shape):
        self.bifpn.build([tuple(output.shape) for output in self.body.outputs])

    def call(self, images, training=None):
        """Preprocessed images `[batch, height, width, 3]` → the BiFPN maps, finest first."""
        images = pad_to_multiple(images, self.pad_to_multiple)
        return self.bifpn(keras.tree.flatten(self.body(images, training=training)), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bifpn_min_level": self.bifpn_min_level,
                "bifpn_max_level": self.bifpn_max_level,
                "bifpn_num_iterations": self.bifpn_num_iterations,
                "bifpn_num_filters": self.bifpn_num_filters,
                "bifpn_combine_method": self.bifpn_combine_method,
                "depth_multiplier": self.depth_multiplier,
                "min_depth": self.min_depth,
                "pad_to_multiple": self.pad_to_multiple,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
                "override_base_feature_extractor_hyperparams": (
                    self.override_base_feature_extractor_hyperparams
                ),
            }
        )
        return config


def efficientnet_body(version, endpoints, depth_multiplier=1.0, regularizer=None, weights=None):
    """The TF OD API's EfficientNet body, made from `keras.applications`' EfficientNet.

    The Keras model is rebuilt layer by layer (weights kept): its input rescaling and
    normalization become identities, its explicit `ZeroPadding2D` layers identities and the
    stride-2 convolutions after them "same"-padded, batch norms fused
    (`kdet.layers.FusedBatchNormalization`), and every kernel and bias takes `regularizer`.

    Args:
        version: a key of `EFFICIENTNETS`, e.g. `"efficientnet-b0"`.
        endpoints: names of the layers whose outputs the body returns, in order.
        depth_multiplier: float. Multiplies the width coefficient. Defaults to `1.0`.
        regularizer: a Keras regularizer or None. Defaults to `None`.
        weights: `None` or `"imagenet"`. Defaults to `None`.

    Returns:
        A functional `keras.Model`: images `[batch, height, width, 3]` (normalized) → the list
        of the `endpoints` maps.
    """
    width, depth, size = EFFICIENTNETS[version]
    index = version.rsplit("-", 1)[-1]
    model = keras_efficientnet.EfficientNet(
        width * depth_multiplier,
        depth,
        size,
        name=f"efficientnet{index}",
        include_top=False,
        weights=weights,
        input_shape=(None, None, 3),
        weights_name=index,
    )

    def clone(layer):
        if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, keras.layers.ZeroPadding2D):
            return keras.layers.Identity(name=layer.name)
        config = layer.get_config()
        if config.get("strides") in ((2, 2), 2) and config.get("padding") == "valid":
            config["padding"] = "same"
        if regularizer is not None:
            serialized = keras.regularizers.serialize(regularizer)
            for entry in ("kernel_regularizer", "depthwise_regularizer"):
                if entry in config:
                    config[entry] = serialized
            if config.get("use_bias"):
                config["bias_regularizer"] = serialized
        return layer.__class__.from_config(config)

    body = clone_with_fused_batch_norm(model, clone_function=clone)
    return keras.Model(
        body.input, [body.get_layer(name).output for name in endpoints], name=model.name
    )


@register_feature_extractor("ssd_efficientnet-b0_bifpn")
class SSDEfficientNetB0BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientDet-D0: EfficientNet-B0 + BiFPN (3 passes, 64 filters), TF OD API
    `ssd_efficientnet-b0_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDEfficientNetB0BiFPNFeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 512, 512, 3]))
    [f.shape[1] for f in extractor(images)]  # [64, 32, 16, 8, 4]
    ```
    """

    efficientnet_version = "efficientnet-b0"
    default_bifpn_num_iterations = 3
    default_bifpn_num_filters = 64


@register_feature_extractor("ssd_efficientnet-b1_bifpn")
class SSDEfficientNetB1BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientDet-D1: EfficientNet-B1 + BiFPN (4 passes, 88 filters), TF OD API
    `ssd_efficientnet-b1_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`."""

    efficientnet_version = "efficientnet-b1"
    default_bifpn_num_iterations = 4
    default_bifpn_num_filters = 88


@register_feature_extractor("ssd_efficientnet-b2_bifpn")
class SSDEfficientNetB2BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientDet-D2: EfficientNet-B2 + BiFPN (5 passes, 112 filters), TF OD API
    `ssd_efficientnet-b2_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`."""

    efficientnet_version = "efficientnet-b2"
    default_bifpn_num_iterations = 5
    default_bifpn_num_filters = 112


@register_feature_extractor("ssd_efficientnet-b3_bifpn")
class SSDEfficientNetB3BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientDet-D3: EfficientNet-B3 + BiFPN (6 passes, 160 filters), TF OD API
    `ssd_efficientnet-b3_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`."""

    efficientnet_version = "efficientnet-b3"
    default_bifpn_num_iterations = 6
    default_bifpn_num_filters = 160


@register_feature_extractor("ssd_efficientnet-b4_bifpn")
class SSDEfficientNetB4BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientDet-D4: EfficientNet-B4 + BiFPN (7 passes, 224 filters), TF OD API
    `ssd_efficientnet-b4_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`."""

    efficientnet_version = "efficientnet-b4"
    default_bifpn_num_iterations = 7
    default_bifpn_num_filters = 224


@register_feature_extractor("ssd_efficientnet-b5_bifpn")
class SSDEfficientNetB5BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientDet-D5: EfficientNet-B5 + BiFPN (7 passes, 288 filters), TF OD API
    `ssd_efficientnet-b5_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`."""

    efficientnet_version = "efficientnet-b5"
    default_bifpn_num_iterations = 7
    default_bifpn_num_filters = 288


@register_feature_extractor("ssd_efficientnet-b6_bifpn")
class SSDEfficientNetB6BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientDet-D6 and D7: EfficientNet-B6 + BiFPN (8 passes, 384 filters), TF OD API
    `ssd_efficientnet-b6_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`."""

    efficientnet_version = "efficientnet-b6"
    default_bifpn_num_iterations = 8
    default_bifpn_num_filters = 384


@register_feature_extractor("ssd_efficientnet-b7_bifpn")
class SSDEfficientNetB7BiFPNFeatureExtractor(SSDEfficientNetBiFPNFeatureExtractor):
    """EfficientNet-B7 + BiFPN (8 passes, 384 filters), TF OD API
    `ssd_efficientnet-b7_bifpn_keras`. See `SSDEfficientNetBiFPNFeatureExtractor`."""

    efficientnet_version = "efficientnet-b7"
    default_bifpn_num_iterations = 8
    default_bifpn_num_filters = 384
