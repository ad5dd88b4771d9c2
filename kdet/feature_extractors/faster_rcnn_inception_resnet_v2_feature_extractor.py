"""Inception-ResNet-v2 Faster R-CNN feature extractor: up to block17 → RPN, the rest → RoIs."""

import keras

from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.inception_resnet_v2_body import BLOCK_REPEATS
from kdet.feature_extractors.inception_resnet_v2_body import inception_resnet_v2_body
from kdet.feature_extractors.inception_resnet_v2_body import proposal_endpoint
from kdet.feature_extractors.registry import register_feature_extractor


@register_feature_extractor("faster_rcnn_inception_resnet_v2")
class FasterRCNNInceptionResNetV2FeatureExtractor(FasterRCNNSplitBodyFeatureExtractor):
    """Inception-ResNet-v2 cut after its block17s: the TF OD API's
    `faster_rcnn_inception_resnet_v2` (TF1) and `faster_rcnn_inception_resnet_v2_keras` (TF2).

    Proposal features are the output of the last block17 (`block17_20_ac`, slim's
    `PreAuxLogits`): 1088 channels at stride 16, or at stride 8 with
    `first_stage_features_stride=8` (the `..._atrous` configs: `Mixed_6a` does not stride and
    the block17s are atrous, rate 2). The box classifier runs `Mixed_7a`, the block8s and
    `Conv2d_7b_1x1` on the RoI crops: `[num_rois, 17, 17, 1088]` (the configs'
    `initial_crop_size: 17`, no max-pool) → `[num_rois, 9, 9, 1536]`, or `[num_rois, 8, 8,
    1536]` in the TF1 layout. The body is `kdet.feature_extractors.inception_resnet_v2_body`
    (every padding "same" as the TF OD API's `align_feature_maps=True`, batch norms without
    scale, momentum 0.9997, epsilon 1e-3), so TF OD API checkpoints of both versions load
    (`kdet.checkpoints`).

    With `slim_layout=True` (set by the config translator for the TF1 type name,
    `faster_rcnn_inception_resnet_v2` rather than `..._keras`) the second stage is the TF1
    extractor's, whose `Mixed_7a` pads "VALID"; the weights are the same.

    `preprocess` scales pixels to -1..1, as the TF OD API's.

    Args:
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. 16, or 8 (atrous). Defaults to `16`.
        backbone_weights: `None` or `"imagenet"`: `keras.applications.InceptionResNetV2`'s
            ImageNet weights (downloaded on first use), copied layer by layer
            (`restore_from_classification_checkpoint`); only with the default
            `depth_multiplier` and `block_repeats`. Defaults to `None`.
        slim_layout: bool. The TF1 (TF-Slim) second stage (see above). Defaults to `False`.
        depth_multiplier: float. Width multiplier of every convolution; not in the TF OD API
            (no config field sets it): for tiny models. Defaults to `1.0`.
        min_depth: int. The fewest filters of a convolution with `depth_multiplier`.
            Defaults to `8`.
        block_repeats: 3 ints, the numbers of block35, block17 and block8; not in the TF OD
            API (10, 20, 10): for tiny models. Defaults to `(10, 20, 10)`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor(
        "faster_rcnn_inception_resnet_v2", first_stage_features_stride=8
    )
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 16, 16, 1088]
    extractor.extract_box_classifier_features(tf.zeros([5, 17, 17, 1088]))  # [5, 9, 9, 1536]
    ```

    Reference:
        [Szegedy et al., 2016](https://arxiv.org/abs/1602.07261); [Huang et al.,
        2017](https://arxiv.org/abs/1611.10012); TF OD API
        `object_detection/models/faster_rcnn_inception_resnet_v2_feature_extractor.py` and
        `faster_rcnn_inception_resnet_v2_keras_feature_extractor.py`.
    """

    FEATURE_STRIDES = (8, 16)

    def __init__(
        self,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        slim_layout=False,
        depth_multiplier=1.0,
        min_depth=8,
        block_repeats=BLOCK_REPEATS,
        **kwargs,
    ):
        super().__init__(
            batch_norm_trainable=batch_norm_trainable,
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.slim_layout = bool(slim_layout)
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.block_repeats = tuple(block_repeats)
        if backbone_weights is not None and (
            depth_multiplier != 1.0 or self.block_repeats != BLOCK_REPEATS
        ):
            raise ValueError(
                f"backbone_weights={backbone_weights!r} are the full Inception-ResNet-v2's: "
                f"they need depth_multiplier 1.0 and block_repeats {BLOCK_REPEATS}; got "
                f"{depth_multiplier} and {self.block_repeats}"
            )
        body = inception_resnet_v2_body(
            output_stride=first_stage_features_stride,
            slim_layout=self.slim_layout,
            depth_multiplier=depth_multiplier,
            min_depth=min_depth,
            block_repeats=self.block_repeats,
        )
        self.split_body(body, proposal_endpoint(self.block_repeats))
        if backbone_weights is not None:
            self.restore_from_classification_checkpoint(
                keras.applications.InceptionResNetV2(
                    include_top=False, weights=backbone_weights, input_shape=(None, None, 3)
                )
            )

    def preprocess(self, images):
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def restore_from_classification_checkpoint(self, source):
        """Copies the weights of a `keras.applications.InceptionResNetV2` (or a `.keras` file
        of one) into both stages.

        Keras's model names most of its layers by a session counter (`conv2d_57`), so the
        weights pair up by position: its layers with weights and this body's come in the same
        order (the same graph); each pair must have the same type and shapes.

        Returns:
            The sorted names of the restored layers.

        Raises:
            ValueError: the numbers, types or shapes of the layers differ.
        """
        if not isinstance(source, keras.layers.Layer):
            source = keras.saving.load_model(source, compile=False)
        theirs = [layer for layer in source.layers if layer.weights]
        ours = [
            layer
            for body in (self.proposal_body, self.box_classifier_body)
            for layer in body.layers
            if layer.weights
        ]
        if len(theirs) != len(ours):
            raise ValueError(
                f"{source.name!r} has {len(theirs)} layers with weights, this extractor "
                f"{len(ours)}: expected a keras.applications.InceptionResNetV2 without top "
                f"(and this extractor at depth_multiplier 1.0, block_repeats {BLOCK_REPEATS})"
            )
        for mine, other in zip(ours, theirs):
            shapes = [tuple(w.shape) for w in mine.weights]
            other_shapes = [tuple(w.shape) for w in other.weights]
            same_kind = isinstance(mine, keras.layers.Conv2D) == isinstance(
                other, keras.layers.Conv2D
            )
            if not same_kind or shapes != other_shapes:
                raise ValueError(
                    f"layer {mine.name!r} ({type(mine).__name__}, {shapes}) has no counterpart "
                    f"in {source.name!r}: its layer {other.name!r} is a "
                    f"{type(other).__name__} with weights {other_shapes}"
                )
        for mine, other in zip(ours, theirs):
            mine.set_weights(other.get_weights())
        return sorted(layer.name for layer in ours)

    def get_config(self):
        config = super().get_config()
        config.update(
            slim_layout=self.slim_layout,
            depth_multiplier=self.depth_multiplier,
            min_depth=self.min_depth,
            block_repeats=list(self.block_repeats),
        )
        return config
