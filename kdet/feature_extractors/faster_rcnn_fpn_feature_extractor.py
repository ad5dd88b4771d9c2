"""Base of the Faster R-CNN FPN extractors: backbone maps → pyramid, RoIs → two fc layers."""

import keras

from kdet.feature_extractors.faster_rcnn_feature_extractor import FasterRCNNFeatureExtractor
from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import batch_norm_training
from kdet.feature_extractors.fpn import DEFAULT_CONV_HYPERPARAMS
from kdet.feature_extractors.fpn import FeaturePyramid
from kdet.feature_extractors.fpn import backbone_endpoints
from kdet.feature_extractors.kernel_regularization import ExtractorHyperparamsProperties
from kdet.feature_extractors.ssd_feature_extractor import extractor_hyperparams

# Width of the two fully connected layers of the box classifier (TF OD API, FPN paper).
BOX_CLASSIFIER_UNITS = 1024


class FasterRCNNFPNFeatureExtractor(ExtractorHyperparamsProperties, FasterRCNNFeatureExtractor):
    """Feature pyramid proposal features and a two-layer fully connected box classifier.

    The TF OD API `FasterRCNNResnetV1FpnKerasFeatureExtractor` layout. Proposal features are
    the levels `fpn_min_level..fpn_max_level` of a `kdet.feature_extractors.FeaturePyramid`
    of depth `additional_layer_depth` built on the backbone's maps (levels above the
    backbone's last one are stride-2 convolutions), a list finest first; level `l` has stride
    `2**l`. The box classifier flattens each RoI crop `[num_rois, 7, 7, additional_layer_depth]`
    and applies two ReLU fully connected layers of `box_classifier_units` (1024) units, with the
    pyramid's batch norm between them as in the TF OD API (`box_classifier_batch_norm`) →
    `[num_rois, box_classifier_units]`; the crop size must be static.

    `conv_hyperparams` (the TF OD API `conv_hyperparams` of the feature extractor) set up the
    pyramid only, as in the TF OD API: neither the body (unless
    `override_base_feature_extractor_hyperparams`) nor the box classifier, whose dense layers
    the TF OD API builds with Keras defaults too.

    A subclass builds its classification body in `__init__` (set up with `body_hyperparams`
    when not None), hands it to `attach_body` with the layer name of each backbone level, and
    implements `preprocess` and `get_config`.

    Args:
        fpn_min_level: int. Finest pyramid level; must be a backbone level.
        fpn_max_level: int. Coarsest pyramid level.
        additional_layer_depth: int. Channels of every pyramid map.
        batch_norm_trainable: bool. Whether the batch norms of the body and the pyramid
            normalize with batch statistics in training. `False`, the TF OD API default, keeps
            them in inference mode; their scale and offset still train. Defaults to `False`.
        first_stage_features_stride: int. 8 or 16, as in the TF OD API, which does not use it
            for FPN either: the pyramid levels set the strides. Defaults to `16`.
        backbone_weights: `None` or `"imagenet"`, see `FasterRCNNFeatureExtractor`. Defaults
            to `None`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the pyramid, or
            `None` for `kdet.feature_extractors.fpn.DEFAULT_CONV_HYPERPARAMS`
            (`TruncatedNormal(stddev=0.03)`, batch norm momentum 0.997, epsilon 1e-3 with
            scale, ReLU6, no regularizer). Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams` too (TF OD API field of this name). Defaults to `False`.
        kernel_regularizer: a Keras regularizer replacing that of `conv_hyperparams` (the
            argument of extractors saved before `conv_hyperparams`), or `None`. Defaults to
            `None`.
        regularize_depthwise: bool replacing that of `conv_hyperparams`, or `None`. Defaults
            to `None`.
        box_classifier_units: int. Width of the two fully connected layers. Defaults to
            `1024` (fixed in the TF OD API).
        box_classifier_batch_norm: bool. A batch norm of `conv_hyperparams` (inference mode
            unless `batch_norm_trainable`) between the two fully connected layers, as the TF
            OD API has; extractors saved before 2026-12 have none. Defaults to `True`.
        **kwargs: passed to `keras.layers.Layer`.

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144); TF OD API
        `object_detection/models/faster_rcnn_resnet_v1_fpn_keras_feature_extractor.py`.
    """

    is_fpn = True

    def __init__(
        self,
        fpn_min_level,
        fpn_max_level,
        additional_layer_depth,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        kernel_regularizer=None,
        regularize_depthwise=None,
        box_classifier_units=BOX_CLASSIFIER_UNITS,
        box_classifier_batch_norm=True,
        **kwargs,
    ):
        if first_stage_features_stride not in (8, 16):
            raise ValueError(
                "first_stage_features_stride must be 8 or 16 (the TF OD API values; FPN "
                f"levels set the strides); got {first_stage_features_stride}."
            )
        super().__init__(
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.fpn_min_level = fpn_min_level
        self.fpn_max_level = fpn_max_level
        self.additional_layer_depth = additional_layer_depth
        self.batch_norm_trainable = batch_norm_trainable
        self.conv_hyperparams = extractor_hyperparams(
            conv_hyperparams, DEFAULT_CONV_HYPERPARAMS, kernel_regularizer, regularize_depthwise
        )
        self.override_base_feature_extractor_hyperparams = bool(
            override_base_feature_extractor_hyperparams
        )
        self.box_classifier_units = box_classifier_units
        self.box_classifier_batch_norm = bool(box_classifier_batch_norm)
        batch_norm = (
            self.conv_hyperparams.batch_norm_layer(name="box_classifier_batch_norm")
            if self.box_classifier_batch_norm
            else None
        )
        self.box_classifier = keras.Sequential(
            [
                keras.layers.Flatten(name="box_classifier_flatten"),
                keras.layers.Dense(
                    box_classifier_units, activation="relu", name="box_classifier_fc1"
                ),
                *([batch_norm] if batch_norm is not None else []),
                keras.layers.Dense(
                    box_classifier_units, activation="relu", name="box_classifier_fc2"
                ),
            ],
            name="box_classifier",
        )

    def attach_body(self, classification_model, level_endpoints, use_depthwise=False):
        """Sets `body` (the backbone maps the pyramid reads) and `feature_pyramid`.

        Args:
            classification_model: a functional `keras.Model` from images.
            level_endpoints: dict `{level: layer name}` of its maps, level `l` at stride
                `2**l`.
            use_depthwise: bool. Separable 3x3 convolutions in the pyramid (FPNLite).
        """
        endpoints = backbone_endpoints(level_endpoints, self.fpn_min_level, self.fpn_max_level)
        self.body = keras.Model(
            classification_model.input,
            [classification_model.get_layer(name).output for name in endpoints],
            name=classification_model.name,
        )
        self.feature_pyramid = FeaturePyramid(
            self.fpn_min_level,
            self.fpn_max_level,
            depth=self.additional_layer_depth,
            use_depthwise=use_depthwise,
            conv_hyperparams=self.conv_hyperparams,
            name="feature_pyramid",
        )

    def build(self, input_shape):
        self.feature_pyramid.build([tuple(output.shape) for output in self.body.outputs])

    def extract_proposal_features(self, images, training=None):
        training = batch_norm_training(training, self.batch_norm_trainable)
        return self.feature_pyramid(
            keras.tree.flatten(self.body(images, training=training)), training=training
        )

    def extract_box_classifier_features(self, crops, training=None):
        return self.box_classifier(
            crops, training=batch_norm_training(training, self.batch_norm_trainable)
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "fpn_min_level": self.fpn_min_level,
                "fpn_max_level": self.fpn_max_level,
                "additional_layer_depth": self.additional_layer_depth,
                "batch_norm_trainable": self.batch_norm_trainable,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
                "override_base_feature_extractor_hyperparams": (
                    self.override_base_feature_extractor_hyperparams
                ),
                "box_classifier_units": self.box_classifier_units,
                "box_classifier_batch_norm": self.box_classifier_batch_norm,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Extractors saved before 2026-12 had no batch norm between the fc layers.
        return super().from_config({"box_classifier_batch_norm": False, **config})
