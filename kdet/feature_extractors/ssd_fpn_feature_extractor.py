"""Base of the SSD FPN feature extractors: the body's level maps → a `FeaturePyramid`."""

import keras

from kdet.feature_extractors.fpn import FeaturePyramid
from kdet.feature_extractors.fpn import backbone_endpoints
from kdet.feature_extractors.ssd_feature_extractor import SSDFeatureExtractor


class SSDFPNFeatureExtractor(SSDFeatureExtractor):
    """A classification body's maps turned into pyramid levels `fpn_min_level..fpn_max_level`.

    The layout of the TF OD API SSD FPN extractors (RetinaNet, MobileNet FPN and FPNLite). The
    body gives the maps of levels `fpn_min_level` up to its last level (level `l` at stride
    `2**l`); a `kdet.feature_extractors.FeaturePyramid` named `feature_pyramid` turns them into
    `fpn_max_level - fpn_min_level + 1` maps `[batch, h_l, w_l, pyramid_depth]`, finest first,
    adding stride-2 layers above the body's last level: one map per level of a
    `kdet.layers.MultiscaleGridAnchorGenerator` with the same levels.

    A subclass builds its body in `__init__`: a functional `keras.Model` from preprocessed
    images to the maps named by `body_endpoints(level_endpoints)`, finest first. It hands the
    body to `attach_body` with its own `FeaturePyramid` settings, implements `preprocess`, and
    adds its own constructor arguments to `get_config`.

    Args:
        fpn_min_level: int. Finest pyramid level; must be a level of the body.
        fpn_max_level: int. Coarsest pyramid level; levels above the body's last one are
            stride-2 layers of the pyramid.
        additional_layer_depth: int. Channels of the pyramid maps (see `pyramid_depth`).
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor`. Defaults to
            `None`.
        kernel_regularizer: `keras.regularizers.Regularizer` (or its serialized form) of the
            convolution kernels of the body and the pyramid, or `None`: the TF OD API
            `conv_hyperparams` regularizer. The subclass hands it to its body. Defaults to
            `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144); TF OD API
        `object_detection/models/feature_map_generators.py` (`KerasFpnTopDownFeatureMaps`).
    """

    def __init__(
        self,
        fpn_min_level,
        fpn_max_level,
        additional_layer_depth,
        backbone_weights=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        self.fpn_min_level = fpn_min_level
        self.fpn_max_level = fpn_max_level
        self.additional_layer_depth = additional_layer_depth
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

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
                `kernel_initializer`, ...). Its levels, depth (`pyramid_depth`) and
                `kernel_regularizer` are the extractor's.
        """
        self.body = body
        self.feature_pyramid = FeaturePyramid(
            self.fpn_min_level,
            self.fpn_max_level,
            depth=self.pyramid_depth,
            kernel_regularizer=self.kernel_regularizer,
            name="feature_pyramid",
            **pyramid_options,
        )

    def build(self, input_shape):
        self.feature_pyramid.build([tuple(output.shape) for output in self.body.outputs])

    def call(self, images, training=None):
        """Preprocessed images `[batch, height, width, 3]` → the pyramid maps, finest first."""
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
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
