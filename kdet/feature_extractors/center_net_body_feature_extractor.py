"""CenterNet extractors made of a classification body and an upsampling head, one output."""

from kdet.feature_extractors.center_net_feature_extractor import CenterNetFeatureExtractor
from kdet.feature_extractors.keras_backbone import preprocess_images
from kdet.feature_extractors.ssd_feature_extractor import check_backbone_weights

BODY_OUT_STRIDE = 4


class CenterNetBodyFeatureExtractor(CenterNetFeatureExtractor):
    """A `keras.applications` body upsampled back to stride 4, as one functional model.

    The ResNet and MobileNetV2 CenterNet extractors of the TF OD API: `preprocess` applies
    the base class's `channel_means` / `channel_stds` / `bgr_ordering`, then the body's own
    `keras.applications` normalization (`BODY_PREPROCESSING`, a mode of
    `keras.applications.imagenet_utils.preprocess_input`: `"caffe"` for ResNet-v1, `"tf"`
    (`x / 127.5 - 1`) for ResNet-v2 and MobileNetV2). A subclass sets `BODY_PREPROCESSING`
    and, in its constructor, `self.feature_model`: a functional `keras.Model` from
    preprocessed images `[batch, height, width, 3]` to `[batch, height / 4, width / 4, c]`.

    Args:
        backbone_weights: `None` (random init) or `"imagenet"` (the `keras.applications`
            ImageNet weights of the body, downloaded on first use). Defaults to `None`.
        **kwargs: `channel_means`, `channel_stds`, `bgr_ordering` (see
            `CenterNetFeatureExtractor`) and `keras.layers.Layer` arguments.
    """

    BODY_PREPROCESSING = None

    def __init__(self, backbone_weights=None, **kwargs):
        super().__init__(**kwargs)
        check_backbone_weights(backbone_weights)
        self.backbone_weights = backbone_weights
        self.feature_model = None

    @property
    def body(self):
        """The classification body: the functional model the feature model starts with."""
        return self.feature_model.layers[1]

    @property
    def out_stride(self):
        return BODY_OUT_STRIDE

    @property
    def num_feature_outputs(self):
        return 1

    def preprocess(self, images):
        """Raw pixels 0..255 `[batch, height, width, 3]` → `channel_means` / `channel_stds` /
        `bgr_ordering` normalization, then the body's `BODY_PREPROCESSING`."""
        return preprocess_images(super().preprocess(images), self.BODY_PREPROCESSING)

    def build(self, input_shape):
        # `feature_model` is a functional model, built with its weights at construction.
        pass

    def call(self, images, training=None):
        """Preprocessed images `[batch, height, width, 3]` (multiples of 32) → a list of one
        map `[batch, height / 4, width / 4, channels]`."""
        return [self.feature_model(images, training=training)]

    def get_config(self):
        config = super().get_config()
        config["backbone_weights"] = self.backbone_weights
        return config
