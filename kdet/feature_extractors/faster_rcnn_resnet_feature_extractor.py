"""ResNet50 / ResNet101 Faster R-CNN feature extractors: stage 4 → RPN, stage 5 → RoIs."""

import keras

from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import CHANNEL_MEANS


class FasterRCNNResNetFeatureExtractor(FasterRCNNSplitBodyFeatureExtractor):
    """A `keras.applications` ResNet V1 cut after stage 4: the TF OD API ResNet Faster R-CNN.

    Proposal features are the output of stage 4 (`conv4_block6_out` in ResNet50,
    `conv4_block23_out` in ResNet101): stride 16, 1024 channels. The box classifier runs
    stage 5 (`conv5_block1..3`) on the RoI crops: `[num_rois, 7, 7, 1024]` →
    `[num_rois, 4, 4, 2048]` (its first block has stride 2, as in `keras.applications`); the
    meta-architecture then average-pools. Layers keep their `keras.applications` names, so
    `restore_from_classification_checkpoint(keras.applications.ResNet50(weights=...))` restores
    both stages.

    `preprocess` subtracts the ImageNet channel means in RGB order, the TF OD API resnet_v1
    rule its checkpoints were trained with. The `keras.applications` ImageNet weights were
    trained on BGR inputs ("caffe" preprocessing), so with `backbone_weights="imagenet"` the
    first layer sees its colour channels swapped until fine-tuning adapts it.

    With `first_stage_features_stride=8` (the TF OD API `..._atrous` configs) stage 4 keeps
    stride 8: its first block does not stride and its 3x3 convolutions are atrous (dilation
    rate 2), as the TF OD API's ResNet with `output_stride=8`; the weights are the same.

    Subclasses set `resnet` (the `keras.applications` constructor) and `proposal_endpoint`.
    Arguments are those of `FasterRCNNSplitBodyFeatureExtractor`.

    Reference:
        [He et al., 2016](https://arxiv.org/abs/1512.03385); TF OD API
        `object_detection/models/faster_rcnn_resnet_keras_feature_extractor.py`.
    """

    resnet = None
    proposal_endpoint = None
    FEATURE_STRIDES = (8, 16)

    def __init__(
        self,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        **kwargs,
    ):
        super().__init__(
            batch_norm_trainable=batch_norm_trainable,
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        clone_function = _atrous_stage_4 if first_stage_features_stride == 8 else None
        body = clone_body(
            self.resnet(input_shape=(None, None, 3), include_top=False, weights=backbone_weights),
            clone_function=clone_function,
        )
        self.split_body(body, self.proposal_endpoint)

    def preprocess(self, images):
        return keras.ops.cast(images, "float32") - keras.ops.convert_to_tensor(CHANNEL_MEANS)


@register_feature_extractor("faster_rcnn_resnet50")
class FasterRCNNResNet50FeatureExtractor(FasterRCNNResNetFeatureExtractor):
    """ResNet50 V1 Faster R-CNN feature extractor (TF OD API `faster_rcnn_resnet50_keras`).

    See `FasterRCNNResNetFeatureExtractor`; proposal features are `conv4_block6_out`.

    Args:
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. 16, or 8 (atrous stage 4). Defaults to `16`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` weights, downloaded
            on first use). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("faster_rcnn_resnet50")
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 8, 8, 1024]
    extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 1024]))  # [5, 4, 4, 2048]
    ```
    """

    resnet = staticmethod(keras.applications.ResNet50)
    proposal_endpoint = "conv4_block6_out"


@register_feature_extractor("faster_rcnn_resnet101")
class FasterRCNNResNet101FeatureExtractor(FasterRCNNResNetFeatureExtractor):
    """ResNet101 V1 Faster R-CNN feature extractor (TF OD API `faster_rcnn_resnet101_keras`).

    See `FasterRCNNResNetFeatureExtractor`; proposal features are `conv4_block23_out`.

    Args:
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. 16, or 8 (atrous stage 4). Defaults to `16`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` weights, downloaded
            on first use). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("faster_rcnn_resnet101")
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 8, 8, 1024]
    ```
    """

    resnet = staticmethod(keras.applications.ResNet101)
    proposal_endpoint = "conv4_block23_out"


def _atrous_stage_4(layer):
    """A copy of a ResNet layer for output stride 8: stage 4 (`conv4_*`) without its stride
    and with dilation rate 2 in its 3x3 convolutions."""
    config = layer.get_config()
    if layer.name in ("conv4_block1_0_conv", "conv4_block1_1_conv"):
        config["strides"] = (1, 1)
    elif layer.name.startswith("conv4_block") and layer.name.endswith("_2_conv"):
        config["dilation_rate"] = (2, 2)
    return layer.__class__.from_config(config)
