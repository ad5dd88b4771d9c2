"""Base of the SSD FPN feature extractors: the body's level maps → a `FeaturePyramid`."""

import keras

from kdet.feature_extractors.fpn import DEFAULT_CONV_HYPERPARAMS
from kdet.feature_extractors.fpn import FeaturePyramid
from kdet.feature_extractors.fpn import backbone_endpoints
from kdet.feature_extractors.kernel_regularization import ExtractorHyperparamsProperties
from kdet.feature_extractors.ssd_feature_extractor import SSDFeatureExtractor
from kdet.feature_extractors.ssd_feature_extractor import check_pad_to_multiple
from kdet.feature_extractors.ssd_feature_extractor import extractor_hyperparams
from kdet.feature_extractors.ssd_feature_extractor import pad_to_multiple


class SSDFPNFeatureExtractor(ExtractorHyperparamsProperties, SSDFeatureExtractor):
    """A classification body's maps turned into pyramid levels `fpn_min_level..fpn_max_level`.

    The layout of the TF OD API SSD FPN extractors (RetinaNet, MobileNet FPN and FPNLite). The
    body gives the maps of levels `fpn_min_level` up to its last level (level `l` at stride
    `2**l`); a `kdet.feature_extractors.FeaturePyramid` named `feature_pyramid` turns them into
    `fpn_max_level - fpn_min_level + 1` maps `[batch, h_l, w_l, pyramid_depth]`, finest first,
    adding stride-2 layers above the body's last level: one map per level of a
    `kdet.layers.MultiscaleGridAnchorGenerator` with the same levels.

    A subclass builds its body in `__init__`: a functional `keras.Model` from preprocessed
    images to the maps named by `body_endpoints(level_endpoints)`, finest first, set up with
    `body_hyperparams` (`conv_hyperparams` with `override_base_feature_extractor_hyperparams`,
    else None: the body's own settings). It hands the body to `attach_body` with its own
    `FeaturePyramid` settings, implements `preprocess`, and adds its own constructor arguments
    to `get_config`. Its class attribute `DEFAULT_CONV_HYPERPARAMS` is the pyramid's default.

    Args:
        fpn_min_level: int. Finest pyramid level; must be a level of the body.
        fpn_max_level: int. Coarsest pyramid level; levels above the body's last one are
            stride-2 layers of the pyramid.
        additional_layer_depth: int. Channels of the pyramid maps (see `pyramid_depth`).
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor`. Defaults to
            `None`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the pyramid, or
            `None` for the class's `DEFAULT_CONV_HYPERPARAMS`. Its regularizer also goes to
            the body. Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams` too (TF OD API field of this name). Defaults to `False`.
        pad_to_multiple: int. Zero-pad the preprocessed images bottom/right to a multiple of
            it before the body (TF OD API `pad_to_multiple`). Defaults to `1` (no padding).
        kernel_regularizer: a Keras regularizer replacing that of `conv_hyperparams` (the
            argument of extractors saved before `conv_hyperparams`), or `None`. Defaults to
            `None`.
        regularize_depthwise: bool replacing that of `conv_hyperparams`, or `None`. Defaults
            to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144); TF OD API
        `object_detection/models/feature_map_generators.py` (`KerasFpnTopDownFeatureMaps`).
    """

    DEFAULT_CONV_HYPERPARAMS = DEFAULT_CONV_HYPERPARAMS

    def __init__(
        self,
        fpn_min_level,
        fpn_max_level,
        additional_layer_depth,
        backbone_weights=None,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        pad_to_multiple=1,
        kernel_regularizer=None,
        regularize_depthwise=None,
        **kwargs,
    ):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        self.pad_to_multiple = check_pad_to_multiple(pad_to_multiple)
        self.fpn_min_level = fpn_min_level
        self.fpn_max_level = fpn_max_level
        self.additional_layer_depth = additional_layer_depth
        self.conv_hyperparams = extractor_hyperparams(
            conv_hyperparams,
            self.DEFAULT_CONV_HYPERPARAMS,
            kernel_regularizer,
            regularize_depthwise,
        )
        self.override_base_feature_extractor_hyperparams = bool(
            override_base_feature_extractor_hyperparams
        )

    @property
    def pyramid_depth(self):
        """Channels of every pyramid map: `additional_layer_depth`."""
        return self.additional_layer_depth

    def body_endpoints(self, level_endpoints):
        """Names of the body's maps the pyramid reads, finest first.

        Args:
            level_endpoints: dict `{level: layer name}` of the classification model's maps.

        Returns:
            The layer names of levels `fpn_min_level..min(fpn_max_level, last level)`.
        """
        return backbone_endpoints(level_endpoints, self.fpn_min_level, self.fpn_max_level)

    def attach_body(self, body, **pyramid_options):
        """Sets `body` and the `feature_pyramid` on its maps.

        Args:
            body: functional `keras.Model` from preprocessed images `[batch, height, width, 3]`
                to the list of the maps of `body_endpoints(...)`, finest first.
            **pyramid_options: further `FeaturePyramid` arguments (`use_depthwise`,
                `use_explicit_padding`). Its levels, depth (`pyramid_depth`) and
                `conv_hyperparams` are the extractor's.
        """
        self.body = body
        self.feature_pyramid = FeaturePyramid(
            self.fpn_min_level,
            self.fpn_max_level,
            depth=self.pyramid_depth,
            conv_hyperparams=self.conv_hyperparams,
            name="feature_pyramid",
            **pyramid_options,
        )

    def build(self, input_shape):
        self.feature_pyramid.build([tuple(output.shape) for output in self.body.outputs])

    def call(self, images, training=None):
        """Preprocessed images `[batch, height, width, 3]` → the pyramid maps, finest first."""
        images = pad_to_multiple(images, self.pad_to_multiple)
        return self.feature_pyramid(
            keras.tree.flatten(self.body(images, training=training)), training=training
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "fpn_min_level": self.fpn_min_level,
                "fpn_max_level": self.fpn_max_level,
                "additional_layer_depth": self.additional_layer_depth,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
                "override_base_feature_extractor_hyperparams": (
                    self.override_base_feature_extractor_hyperparams
                ),
                "pad_to_multiple": self.pad_to_multiple,
            }
        )
        return config
