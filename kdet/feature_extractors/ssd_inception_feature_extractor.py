"""Inception v2 and v3 SSD feature extractors: body endpoints plus extra stride-2 layers."""

import keras

from kdet.feature_extractors.inception_body import inception_body
from kdet.feature_extractors.inception_body import restore_keras_inception_v3
from kdet.feature_extractors.multi_resolution_feature_maps import SSDMultiResolutionFeatureExtractor
from kdet.feature_extractors.multi_resolution_feature_maps import extra_feature_map_layers
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.layers.conv_hyperparams import ConvHyperparams

# The default conv_hyperparams: those of the TF OD API ssd_inception_v2 / v3 COCO configs
# (truncated_normal_initializer stddev 0.03, RELU_6, batch_norm decay 0.9997, epsilon 0.001,
# scale true), without their regularizer.
DEFAULT_CONV_HYPERPARAMS = ConvHyperparams(
    kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
    activation="relu6",
    batch_norm={"momentum": 0.9997, "epsilon": 1e-3, "center": True, "scale": True},
)


class SSDInceptionFeatureExtractor(SSDMultiResolutionFeatureExtractor):
    """A slim Inception body's endpoints plus extra layers: the six maps of SSD Inception.

    The TF OD API's TF1 `SSDInceptionV2FeatureExtractor` / `SSDInceptionV3FeatureExtractor`:
    the body (`kdet.feature_extractors.inception_body`, slim's layout and names) gives the
    maps `FEATURE_ENDPOINTS`; extra maps of nominal depths `EXTRA_LAYER_DEPTHS` follow the
    last one, each a 1x1 convolution to half the depth and a stride-2 3x3 convolution
    (`kdet.feature_extractors.multi_resolution_feature_maps`, TF OD API
    `multi_resolution_feature_maps` with `insert_1x1_conv`), named as the TF OD API names
    them (`Mixed_5c_2_Conv2d_2_3x3_s2_512`). Depths everywhere are
    `max(int(depth * depth_multiplier), min_depth)`.

    `conv_hyperparams` set up every convolution, batch norm and activation, the body's too:
    the TF OD API runs the slim body inside the `conv_hyperparams` arg scope (slim's Inception
    has no arg scope of its own), only the kernels slim initializes itself (`trunc_normal`)
    keep their initializer. The TF OD API therefore refuses
    `override_base_feature_extractor_hyperparams: false`; kdet builds the same model either
    way, so that `ssd_inception_v2_pets.config`, which leaves the field out, builds.

    A subclass sets `ARCHITECTURE`, `FEATURE_ENDPOINTS` and `EXTRA_LAYER_DEPTHS`, and
    `KERAS_APPLICATION` (the name of the `keras.applications` model of the same body) with
    `restore_from_classification_checkpoint` where Keras has the body.

    Args:
        depth_multiplier: float. Width multiplier of the body and the extra layers. Defaults
            to `1.0`.
        min_depth: int. Lower bound on every convolution's depth. Defaults to `16`.
        use_depthwise: bool. Build the stride-2 extra convolutions as depthwise 3x3 + 1x1.
            Defaults to `False`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            `DEFAULT_CONV_HYPERPARAMS`. Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool, stored only (see above).
            Defaults to `True`.
        use_explicit_padding: bool. Pad the extra layers' stride-2 convolutions as TF OD API
            `ops.fixed_padding` and convolve "valid" (the body is slim's whatever this says,
            as in the TF OD API). Defaults to `False`.
        pad_to_multiple: int. Zero-pad the preprocessed images bottom/right to a multiple of
            it before the body. Defaults to `1`.
        backbone_weights: `None` (random) or, for a subclass with a `KERAS_APPLICATION`
            (Inception v3), `"imagenet"`: that `keras.applications` model's ImageNet weights
            (downloaded and checked by Keras on first use, so online only), copied into the
            body by `restore_from_classification_checkpoint`; only at depth multiplier 1,
            with batch norms that center. The extra layers stay random. Inception v2 has no
            Keras twin: start it from a slim classification checkpoint (`kdet.checkpoints`).
            Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.
    """

    ARCHITECTURE = None
    FEATURE_ENDPOINTS = ()
    EXTRA_LAYER_DEPTHS = ()
    KERAS_APPLICATION = None

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        use_depthwise=False,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=True,
        use_explicit_padding=False,
        pad_to_multiple=1,
        backbone_weights=None,
        **kwargs,
    ):
        if self.KERAS_APPLICATION is None:
            check_no_imagenet_weights(type(self).__name__, backbone_weights)
        super().__init__(
            depth_multiplier,
            min_depth,
            bool(use_depthwise),
            use_explicit_padding,
            pad_to_multiple,
            conv_hyperparams,
            DEFAULT_CONV_HYPERPARAMS,
            override_base_feature_extractor_hyperparams,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        if backbone_weights is not None:
            self._check_keras_weights_fit(backbone_weights)
        body = inception_body(
            self.ARCHITECTURE,
            self.FEATURE_ENDPOINTS[-1],
            self.conv_hyperparams,
            depth_multiplier,
            min_depth,
        )
        self.body = keras.Model(
            body.input,
            [body.get_layer(name).output for name in self.FEATURE_ENDPOINTS],
            name=self.ARCHITECTURE,
        )
        self.extra_layers = extra_feature_map_layers(
            self.FEATURE_ENDPOINTS[-1],
            len(self.FEATURE_ENDPOINTS),
            self.EXTRA_LAYER_DEPTHS,
            self.conv_hyperparams,
            depth_multiplier,
            min_depth,
            use_depthwise=self.use_depthwise,
            use_explicit_padding=self.use_explicit_padding,
        )
        if backbone_weights is not None:
            self.restore_from_classification_checkpoint(
                getattr(keras.applications, self.KERAS_APPLICATION)(
                    include_top=False, weights=backbone_weights, input_shape=(None, None, 3)
                )
            )

    def _check_keras_weights_fit(self, backbone_weights):
        """Raises before any download unless Keras's weights load into this body."""
        batch_norm = self.conv_hyperparams.batch_norm
        if self.depth_multiplier != 1.0 or not (batch_norm and batch_norm["center"]):
            raise ValueError(
                f"{type(self).__name__}: backbone_weights={backbone_weights!r} are "
                f"keras.applications.{self.KERAS_APPLICATION}'s, which load into the body only "
                "at depth_multiplier 1.0 with batch norms that center; got depth_multiplier="
                f"{self.depth_multiplier} and conv_hyperparams batch_norm={batch_norm}"
            )

    def get_config(self):
        config = super().get_config()
        config["use_depthwise"] = self.use_depthwise
        return config


@register_feature_extractor("ssd_inception_v2")
class SSDInceptionV2FeatureExtractor(SSDInceptionFeatureExtractor):
    """SSD Inception v2: `Mixed_4c` (stride 16, 576 channels at depth multiplier 1) and
    `Mixed_5c` (stride 32, 1024), then extra maps of depths 512, 256, 256 and 128; at 300x300
    the maps are 19, 10, 5, 3, 2 and 1 pixels wide. See `SSDInceptionFeatureExtractor`.

    The body's first convolution is slim's separable 7x7 (`Conv2d_1a_7x7`), as in every TF OD
    API Inception v2 model.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDInceptionV2FeatureExtractor(depth_multiplier=0.25)
    images = extractor.preprocess(tf.zeros([1, 300, 300, 3]))
    [f.shape[1] for f in extractor(images)]  # [19, 10, 5, 3, 2, 1]
    ```

    Reference:
        [Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167); TF OD API
        `object_detection/models/ssd_inception_v2_feature_extractor.py`.
    """

    ARCHITECTURE = "InceptionV2"
    FEATURE_ENDPOINTS = ("Mixed_4c", "Mixed_5c")
    EXTRA_LAYER_DEPTHS = (512, 256, 256, 128)


@register_feature_extractor("ssd_inception_v3")
class SSDInceptionV3FeatureExtractor(SSDInceptionFeatureExtractor):
    """SSD Inception v3: `Mixed_5d` (stride 8, 288 channels at depth multiplier 1), `Mixed_6e`
    (stride 16, 768) and `Mixed_7c` (stride 32, 2048), then extra maps of depths 512, 256 and
    128. The stem is "valid"-padded (slim's): at 300x300 the maps are 35, 17, 8, 4, 2 and 1
    pixels wide; images need 75 pixels or more. `backbone_weights="imagenet"` takes
    `keras.applications.InceptionV3`'s weights (the same network). See
    `SSDInceptionFeatureExtractor`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDInceptionV3FeatureExtractor(depth_multiplier=0.25)
    images = extractor.preprocess(tf.zeros([1, 300, 300, 3]))
    [f.shape[1] for f in extractor(images)]  # [35, 17, 8, 4, 2, 1]
    # The body with keras.applications.InceptionV3's ImageNet weights (online):
    pretrained = kdet.feature_extractors.SSDInceptionV3FeatureExtractor(
        backbone_weights="imagenet"
    )
    ```

    Reference:
        [Szegedy et al., 2015](https://arxiv.org/abs/1512.00567); TF OD API
        `object_detection/models/ssd_inception_v3_feature_extractor.py`.
    """

    ARCHITECTURE = "InceptionV3"
    FEATURE_ENDPOINTS = ("Mixed_5d", "Mixed_6e", "Mixed_7c")
    EXTRA_LAYER_DEPTHS = (512, 256, 128)
    KERAS_APPLICATION = "InceptionV3"

    def restore_from_classification_checkpoint(self, source):
        """Copies the weights of a `keras.applications.InceptionV3` (or a `.keras` file of
        one) into the body (`kdet.feature_extractors.inception_body.restore_keras_inception_v3`:
        by position, every shape checked); what `backbone_weights="imagenet"` does with the
        downloaded model. Keras's `mixed2`, `mixed7` and `mixed10` are then the body's
        `Mixed_5d`, `Mixed_6e` and `Mixed_7c` (with `conv_hyperparams` of ReLU activation and
        Keras's batch norm epsilon 1e-3; the TF OD API configs' ReLU6 clips them at 6).

        Returns:
            The sorted names of the restored layers.
        """
        return restore_keras_inception_v3(source, self.body)


def check_no_imagenet_weights(extractor_name, backbone_weights):
    """Rejects `backbone_weights="imagenet"` for a body `keras.applications` does not have."""
    if backbone_weights is not None:
        raise ValueError(
            f"{extractor_name} has no backbone_weights={backbone_weights!r}: keras.applications "
            "has no ImageNet weights of this slim Inception body; pass None and restore a TF "
            "OD API or slim classification checkpoint (kdet.checkpoints.restore_tfod_checkpoint"
            ", fine_tune_checkpoint_type: 'classification')"
        )
