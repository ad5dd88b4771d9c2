"""Base of the Faster R-CNN extractors that cut one classification body in two."""

import keras

from kdet.feature_extractors.faster_rcnn_feature_extractor import FasterRCNNFeatureExtractor


class FasterRCNNSplitBodyFeatureExtractor(FasterRCNNFeatureExtractor):
    """A classification body cut at one layer: the first part feeds the RPN, the rest the RoIs.

    The TF OD API split of its ResNet Faster R-CNN: the layers up to the cut (ResNet's stage 4)
    compute the proposal features of the whole image; the layers after it (stage 5) run on each
    RoI crop, `[num_rois, 7, 7, channels]` after the meta-architecture's 14 → 7 max-pool. Both
    parts are `keras.Model`s made of the body's own layer objects, so layer names and weights
    are the classification model's, and `restore_from_classification_checkpoint` restores the
    second stage too.

    A subclass builds its body in `__init__`, hands it to `split_body`, and implements
    `preprocess` and `get_config`.

    Args:
        batch_norm_trainable: bool. Whether the body's batch norms normalize with the
            statistics of the batch in training (and update their moving averages). `False`,
            the TF OD API default, keeps them in inference mode, which suits the small
            batches of detection; their scale and offset still train. Defaults to `False`.
        first_stage_features_stride: int. The stride of the cut: one of the class's
            `FEATURE_STRIDES` (16; 8 too for the ResNets, with atrous stage-4 convolutions).
            Defaults to `16`.
        backbone_weights: `None` or `"imagenet"`, see `FasterRCNNFeatureExtractor`. Defaults
            to `None`.
        **kwargs: passed to `keras.layers.Layer`.
    """

    # The strides `first_stage_features_stride` may take.
    FEATURE_STRIDES = (16,)

    def __init__(
        self,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        **kwargs,
    ):
        if first_stage_features_stride not in self.FEATURE_STRIDES:
            strides = " or ".join(str(stride) for stride in self.FEATURE_STRIDES)
            raise ValueError(
                f"{type(self).__name__} cuts its body at stride {strides}, so "
                f"first_stage_features_stride must be {strides}; got "
                f"{first_stage_features_stride}."
            )
        super().__init__(
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.batch_norm_trainable = batch_norm_trainable

    def split_body(self, body, proposal_endpoint):
        """Cuts the functional model `body` after the layer named `proposal_endpoint`.

        Sets `proposal_body` (images → that layer's output) and `box_classifier_body` (crops
        of that output → `body`'s output).
        """
        features = body.get_layer(proposal_endpoint).output
        self.proposal_body = keras.Model(body.input, features, name=f"{body.name}_proposal")
        # Keras builds a model from an inner tensor by replacing it with a new input.
        self.box_classifier_body = keras.Model(
            features, body.output, name=f"{body.name}_box_classifier"
        )

    def extract_proposal_features(self, images, training=None):
        return self.proposal_body(
            images, training=batch_norm_training(training, self.batch_norm_trainable)
        )

    def extract_box_classifier_features(self, crops, training=None):
        return self.box_classifier_body(
            crops, training=batch_norm_training(training, self.batch_norm_trainable)
        )

    def get_config(self):
        config = super().get_config()
        config["batch_norm_trainable"] = self.batch_norm_trainable
        return config


def batch_norm_training(training, batch_norm_trainable):
    """The `training` flag for a body whose only mode-dependent layers are batch norms."""
    return training if batch_norm_trainable else False
