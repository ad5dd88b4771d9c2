"""ResNet50 / 101 / 152 Faster R-CNN feature extractors: stage 4 → RPN, stage 5 → RoIs."""


from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.resnet_v1_body import CONV4_LAST_LAYERS
from kdet.feature_extractors.resnet_v1_body import RESNETS
from kdet.feature_extractors.resnet_v1_body import ResNetBodyOptions
from kdet.feature_extractors.resnet_v1_body import resnet_v1_body
from kdet.feature_extractors.resnet_v1_body import restore_keras_resnet


class FasterRCNNResNetFeatureExtractor(ResNetBodyOptions, FasterRCNNSplitBodyFeatureExtractor):
    """A ResNet V1 cut after stage 4: the TF OD API ResNet Faster R-CNN.

    Proposal features are the output of stage 4 (`conv4_block6_out` in ResNet50,
    `conv4_block23_out` in ResNet101, `conv4_block36_out` in ResNet152): stride 16, 1024
    channels. The box classifier runs stage 5 (`conv5_block1..3`) on the RoI crops:
    `[num_rois, 7, 7, 1024]` → `[num_rois, 4, 4, 2048]` (its first block has stride 2); the
    meta-architecture then average-pools.

    The body is the TF OD API's TF2 one (`kdet.feature_extractors.resnet_v1_body`: no
    convolution biases, the first max-pool with "SAME" padding, batch norms of epsilon 1e-5,
    `depth_multiplier`), so its TF2 checkpoints load (`kdet.checkpoints`) and compute what
    they computed there. With `tf_od_api_body=False` (extractors saved before 2026-12) it is
    `keras.applications`' ResNet as it is. Layers keep their `keras.applications` names, so
    `restore_from_classification_checkpoint(keras.applications.ResNet50(weights=...))`
    restores both stages (into the TF OD API body with each convolution bias folded into the
    batch norm after it).

    `preprocess` subtracts the ImageNet channel means in RGB order, the TF OD API resnet_v1
    rule its checkpoints were trained with. The `keras.applications` ImageNet weights were
    trained on BGR inputs ("caffe" preprocessing), so with `backbone_weights="imagenet"` the
    first layer sees its colour channels swapped until fine-tuning adapts it.

    With `first_stage_features_stride=8` (the TF OD API `..._atrous` configs) stage 4 keeps
    stride 8: its first block does not stride and its 3x3 convolutions are atrous (dilation
    rate 2), as the TF OD API's ResNet with `output_stride=8`; the weights are the same.

    With `slim_layout=True` (set by the config translator for the TF1 type names,
    `faster_rcnn_resnet50` rather than `faster_rcnn_resnet50_keras`) the body is the TF1 one
    (`kdet.feature_extractors.resnet_v1_body.slim_resnet_v1_body`: TF-Slim's `resnet_v1`,
    which strides in each block's last unit and pads strided convolutions explicitly) cut at
    `first_stage_features_stride` as the TF OD API's TF1 extractor does, and stage 5 runs on
    the `[num_rois, 7, 7, 1024]` crops without striding: `[num_rois, 7, 7, 2048]`. Its TF1
    checkpoints (`model.ckpt`, the slim `resnet_v1_50.ckpt`) load by TF-Slim name.

    Subclasses set `depth` (50, 101 or 152).

    Args:
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. 16, or 8 (atrous stage 4). Defaults to `16`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` weights, downloaded
            on first use; only at `depth_multiplier` 1). Defaults to `None`.
        depth_multiplier: float. Width multiplier of the TF OD API body (its
            `resnet_v1_50(depth_multiplier=...)`; the TF OD API's configs have no field for
            it). Defaults to `1.0`.
        min_depth: int. The fewest filters of a convolution of the TF OD API body. Defaults
            to `8`.
        tf_od_api_body: bool. The TF OD API's body (see above); `False`: the
            `keras.applications` one. Defaults to `True`.
        slim_layout: bool. The TF OD API's TF1 (TF-Slim) body (see above; needs
            `tf_od_api_body` and no `backbone_weights`). Defaults to `False`.
        **kwargs: passed to `keras.layers.Layer`.

    Reference:
        [He et al., 2016](https://arxiv.org/abs/1512.03385); TF OD API
        `object_detection/models/faster_rcnn_resnet_keras_feature_extractor.py`.
    """

    depth = None
    FEATURE_STRIDES = (8, 16)

    def __init__(
        self,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        depth_multiplier=1.0,
        min_depth=8,
        tf_od_api_body=True,
        slim_layout=False,
        **kwargs,
    ):
        super().__init__(
            batch_norm_trainable=batch_norm_trainable,
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.tf_od_api_body = bool(tf_od_api_body)
        self.slim_layout = bool(slim_layout)
        clone_function = _atrous_stage_4 if first_stage_features_stride == 8 else None
        if self.slim_layout:
            if not self.tf_od_api_body or backbone_weights is not None:
                raise ValueError(
                    "slim_layout builds the TF OD API's TF1 body: it needs tf_od_api_body=True "
                    f"and no backbone_weights; got tf_od_api_body={tf_od_api_body}, "
                    f"backbone_weights={backbone_weights!r}. Restore a slim classification "
                    "checkpoint (resnet_v1_50.ckpt) with kdet.checkpoints instead"
                )
            body = resnet_v1_body(
                self.depth,
                depth_multiplier,
                min_depth,
                slim_layout=True,
                output_stride=first_stage_features_stride,
            )
        elif self.tf_od_api_body:
            body = resnet_v1_body(
                self.depth,
                depth_multiplier,
                min_depth,
                weights=backbone_weights,
                clone_function=clone_function,
            )
        else:
            if depth_multiplier != 1.0:
                raise ValueError(
                    f"depth_multiplier is {depth_multiplier}, but the keras.applications body "
                    "(tf_od_api_body=False) has none: use tf_od_api_body=True"
                )
            body = clone_body(
                RESNETS[self.depth](
                    input_shape=(None, None, 3), include_top=False, weights=backbone_weights
                ),
                clone_function=clone_function,
            )
        self.split_body(body, CONV4_LAST_LAYERS[self.depth])

    def restore_from_classification_checkpoint(self, source):
        """Copies weights from a classification model into the layers of the same name; into
        the TF OD API body a `keras.applications` ResNet's convolution biases are folded into
        the batch norms (`kdet.feature_extractors.resnet_v1_body.copy_folding_conv_biases`).
        See `FasterRCNNFeatureExtractor.restore_from_classification_checkpoint`."""
        if self.slim_layout:
            raise ValueError(
                "a keras.applications ResNet strides where the TF1 (slim_layout) body does not; "
                "restore a slim classification checkpoint (resnet_v1_50.ckpt) with "
                "kdet.checkpoints.restore_tfod_checkpoint(model, path, 'classification')"
            )
        if not self.tf_od_api_body:
            return super().restore_from_classification_checkpoint(source)
        return restore_keras_resnet(source, [self.proposal_body, self.box_classifier_body])



@register_feature_extractor("faster_rcnn_resnet50")
class FasterRCNNResNet50FeatureExtractor(FasterRCNNResNetFeatureExtractor):
    """ResNet50 V1 Faster R-CNN feature extractor (TF OD API `faster_rcnn_resnet50_keras`).

    See `FasterRCNNResNetFeatureExtractor` (its arguments); proposal features are
    `conv4_block6_out`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("faster_rcnn_resnet50")
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 8, 8, 1024]
    extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 1024]))  # [5, 4, 4, 2048]
    ```
    """

    depth = 50


@register_feature_extractor("faster_rcnn_resnet101")
class FasterRCNNResNet101FeatureExtractor(FasterRCNNResNetFeatureExtractor):
    """ResNet101 V1 Faster R-CNN feature extractor (TF OD API `faster_rcnn_resnet101_keras`).

    See `FasterRCNNResNetFeatureExtractor` (its arguments); proposal features are
    `conv4_block23_out`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("faster_rcnn_resnet101")
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 8, 8, 1024]
    ```
    """

    depth = 101


@register_feature_extractor("faster_rcnn_resnet152")
class FasterRCNNResNet152FeatureExtractor(FasterRCNNResNetFeatureExtractor):
    """ResNet152 V1 Faster R-CNN feature extractor (TF OD API `faster_rcnn_resnet152_keras`).

    See `FasterRCNNResNetFeatureExtractor` (its arguments); proposal features are
    `conv4_block36_out`.
    """

    depth = 152


def _atrous_stage_4(layer):
    """A copy of a ResNet layer for output stride 8: stage 4 (`conv4_*`) without its stride
    and with dilation rate 2 in its 3x3 convolutions."""
    config = layer.get_config()
    if layer.name in ("conv4_block1_0_conv", "conv4_block1_1_conv"):
        config["strides"] = (1, 1)
    elif layer.name.startswith("conv4_block") and layer.name.endswith("_2_conv"):
        config["dilation_rate"] = (2, 2)
    return layer.__class__.from_config(config)
