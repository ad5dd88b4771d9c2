"""NASNet-A Large Faster R-CNN feature extractor: stem to `Cell_11` → RPN, the rest → RoIs."""

import keras

from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.nasnet_body import NASNetLayers
from kdet.feature_extractors.nasnet_body import check_num_cells
from kdet.feature_extractors.nasnet_body import nasnet_cells
from kdet.feature_extractors.nasnet_body import nasnet_stem
from kdet.feature_extractors.nasnet_body import reduction_indices
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_inception_feature_extractor import check_no_imagenet_weights

# slim `nasnet_large_arg_scope(weight_decay=5e-5)`; slim's l2_regularizer halves the sum.
WEIGHT_DECAY = 5e-5


@register_feature_extractor("faster_rcnn_nas")
class FasterRCNNNASFeatureExtractor(FasterRCNNSplitBodyFeatureExtractor):
    """NASNet-A Large cut before its last reduction cell: the TF OD API's `faster_rcnn_nas`.

    The first stage is slim's `build_nasnet_large` up to `Cell_11` (stem, 6 normal cells,
    reduction cell 0, 6 normal cells; stride 16); its proposal features are `Cell_10` and
    `Cell_11` concatenated, `[batch, h, w, 2 * 2016]` at full width. The second stage runs on
    each RoI crop: it splits the crop back into those two cell outputs and runs reduction
    cell 1 (stride 2) and cells 12–17 with a final ReLU, `[num_rois, 17, 17, 4032]` →
    `[num_rois, 9, 9, 4032]`. The cells are `kdet.feature_extractors.nasnet_body`'s (slim's
    layout and scope names); batch norms decay 0.9997, epsilon 1e-3; kernels L2-regularized
    with slim's weight decay 5e-5. Drop path is not applied (see `nasnet_body`).

    The TF OD API hard-codes NASNet-A Large's hyperparameters; `num_conv_filters`,
    `num_cells` and `stem_multiplier` are kdet's knobs to build small models (tests).

    Args:
        num_conv_filters: int. slim's `num_conv_filters`: the filter size of the first stack;
            cells output 6 times their filter size. Defaults to `168` (NASNet-A Large).
        num_cells: int. slim's `num_cells`, normal cells in all; reduction cells precede
            cells `num_cells // 3` and `2 * num_cells // 3`. Defaults to `18`.
        stem_multiplier: float. `conv0` has `int(32 * stem_multiplier)` filters. Defaults
            to `3.0`.
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. Must be 16. Defaults to `16`.
        backbone_weights: `None` (no `keras.applications` weights in slim's layout).
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.FasterRCNNNASFeatureExtractor(
        num_conv_filters=8, num_cells=6, stem_multiplier=0.5)
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 8, 8, 192]: Cell_2, Cell_3 (6 * 16 channels each)
    extractor.extract_box_classifier_features(features[:, :7, :7])  # [1, 4, 4, 192]
    ```

    Reference:
        [Zoph et al., 2017](https://arxiv.org/abs/1707.07012); TF OD API
        `object_detection/models/faster_rcnn_nas_feature_extractor.py`.
    """

    def __init__(
        self,
        num_conv_filters=168,
        num_cells=18,
        stem_multiplier=3.0,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        **kwargs,
    ):
        check_no_imagenet_weights(type(self).__name__, backbone_weights)
        check_num_cells(num_cells)
        super().__init__(
            batch_norm_trainable=batch_norm_trainable,
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.num_conv_filters = num_conv_filters
        self.num_cells = num_cells
        self.stem_multiplier = stem_multiplier
        self.proposal_body, self.box_classifier_body = self._build_stages()

    def _build_stages(self):
        layers = NASNetLayers(keras.regularizers.L2(WEIGHT_DECAY / 2))
        second_reduction = reduction_indices(self.num_cells)[1]
        images = keras.Input((None, None, 3), name="images")
        prev, x = nasnet_stem(images, self.num_conv_filters, self.stem_multiplier, layers)
        # Stacks 1 and 2 end at filter scaling 2 (the stem's two reductions count for
        # scaling 1/4 → 1/2 → 1, then reduction cell 0 doubles it).
        prev, x = nasnet_cells(
            x, prev, range(second_reduction), self.num_cells, self.num_conv_filters, 1.0, True,
            layers,
        )
        features = keras.layers.Concatenate(name="proposal_features")([prev, x])
        proposal_body = keras.Model(images, features, name="nasnet_proposal")

        depth = features.shape[-1] // 2
        crops = keras.Input((None, None, 2 * depth), name="crops")
        hidden_previous, hidden = keras.ops.split(crops, 2, axis=-1)
        # The TF OD API starts at filter scaling 2.0 (after reduction cell 0).
        _, x = nasnet_cells(
            hidden, hidden_previous, range(second_reduction, self.num_cells), self.num_cells,
            self.num_conv_filters, 2.0, False, layers,
        )
        x = keras.layers.ReLU(name="final_layer_relu")(x)
        box_classifier_body = keras.Model(crops, x, name="nasnet_box_classifier")
        return proposal_body, box_classifier_body

    def preprocess(self, images):
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_conv_filters": self.num_conv_filters,
            "num_cells": self.num_cells,
            "stem_multiplier": self.stem_multiplier,
        })
        return config
