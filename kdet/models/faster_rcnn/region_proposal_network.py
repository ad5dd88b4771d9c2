"""`RegionProposalNetwork`: the first stage of `kdet.FasterRCNN` (TF OD API `first_stage_*`)."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import clip_boxes
from kdet.layers.grid_anchor_generator import GridAnchorGenerator
from kdet.layers.proposal_generator import ProposalGenerator
from kdet.losses.weighted_smooth_l1_localization_loss import WeightedSmoothL1LocalizationLoss
from kdet.losses.weighted_softmax_classification_loss import WeightedSoftmaxClassificationLoss
from kdet.models.distribution import global_normalizer
from kdet.models.faster_rcnn.rpn_head import RPNHead
from kdet.models.object_detector import static_or_dynamic_hw
from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from kdet.targets.target_assigner import TargetAssigner
from kdet.utils.components import ComponentsConfig


def default_anchor_generator(first_stage_features_stride=16):
    """The TF OD API Faster R-CNN grid anchors: scales 0.25..2 of 256 pixels, aspect ratios
    0.5, 1, 2, one grid point per `first_stage_features_stride` pixels."""
    return GridAnchorGenerator(
        scales=(0.25, 0.5, 1.0, 2.0),
        aspect_ratios=(0.5, 1.0, 2.0),
        anchor_stride=(first_stage_features_stride, first_stage_features_stride),
    )


@keras.saving.register_keras_serializable(package="kdet")
class RegionProposalNetwork(ComponentsConfig, keras.layers.Layer):
    """The region proposal network: anchors, RPN head, proposals, and the RPN losses.

    Expresses the TF OD API `first_stage_*` fields of the `faster_rcnn { … }` block. Called on
    the proposal feature maps, it generates the anchors, predicts a box encoding and an
    objectness for each (`rpn_head`) and decodes the best of them into proposals
    (`proposal_generator`: clipping to each image's content, NMS; no gradient flows into the
    proposals). `compute_losses` matches the anchors to the groundtruth (`matcher`), samples
    `minibatch_size` anchors per image, `positive_balance_fraction` of them positive, and
    returns the objectness (softmax) and box (smooth L1) losses, each divided by the number of
    sampled anchors summed over all replicas.

    Args:
        anchor_generator: the anchors of the feature maps, in the RPN head's order (finest
            map first): a `kdet.layers.GridAnchorGenerator` for one map, a
            `MultiscaleGridAnchorGenerator` for an FPN pyramid. Its stride must be the
            extractor's. Defaults to `default_anchor_generator()` (stride 16);
            `kdet.FasterRCNN` passes one matching its feature extractor.
        rpn_head: a layer mapping the feature maps to `(box_encodings [B, A, 4],
            objectness_logits [B, A, 2])`. Defaults to `RPNHead(anchors per location)`
            (depth 512, kernel 3: TF OD API `first_stage_box_predictor_*`,
            `first_stage_atrous_rate`).
        proposal_generator: a `kdet.layers.ProposalGenerator` (TF OD API
            `first_stage_max_proposals`, `first_stage_nms_iou_threshold`,
            `first_stage_nms_score_threshold`); its `box_coder` also encodes the RPN box
            targets. Defaults to `ProposalGenerator()`: 300 proposals, IoU 0.7, score 0.0.
        matcher: the matcher of anchors to groundtruth. Defaults to `ArgmaxMatcher(0.7, 0.3,
            force_match_for_each_row=True)` (the TF OD API's proposal target assigner).
        clip_anchors_to_image: bool. Clip the anchors to the (padded) input before target
            assignment and decoding in training too (TF OD API `clip_anchors_to_image`).
            Defaults to `False`.
        clip_anchors_at_inference: bool. Clip the anchors to the (padded) input before
            decoding at inference whatever `clip_anchors_to_image` says, as the TF OD API
            does. Defaults to `True` (`False` for RPNs saved before 2026-12-05, which did not).
        minibatch_size: int. Anchors sampled per image for the losses (TF OD API
            `first_stage_minibatch_size`). Defaults to `256`.
        positive_balance_fraction: float. Largest positive fraction of the sampled anchors
            (`first_stage_positive_balance_fraction`). Defaults to `0.5`.
        localization_loss_weight: float. Defaults to `2.0` (the TF OD API proto: 1.0).
        objectness_loss_weight: float. Defaults to `1.0`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        feature_maps: float `[B, h, w, C]`, or a list of them finest first (FPN).
        image_size: `(height, width)` of the padded input in pixels (Python ints or int
            scalars), passed as a keyword.
        window: float32 `[B, 2]`, the `(height, width)` fraction of the padded input each
            image's content fills (`ObjectDetector.resize_inputs`); proposals are clipped to
            it.

    Returns:
        A dict: `"anchors"` float32 `[A, 4]` `rel_yxyx` of the padded input,
        `"rpn_box_encodings"` float32 `[B, A, 4]`, `"rpn_objectness_logits"` float32
        `[B, A, 2]` (background, object), `"proposals"` float32 `[B, P, 4]` `rel_yxyx` of the
        padded input, -1 padded, `"proposal_scores"` float32 `[B, P]` and `"num_proposals"`
        int32 `[B]` (`P = proposal_generator.max_proposals`).

    Example:
    ```python
    rpn = kdet.models.faster_rcnn.RegionProposalNetwork(
        kdet.models.faster_rcnn.default_anchor_generator(8),
        proposal_generator=kdet.layers.ProposalGenerator(max_proposals=100),
    )
    outputs = rpn(tf.zeros([2, 16, 16, 32]), image_size=(128, 128), window=tf.ones([2, 2]))
    outputs["proposals"].shape  # (2, 100, 4)
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497), section 3.1; TF OD API
        `meta_architectures/faster_rcnn_meta_arch.py` (first stage).
    """

    component_names = ("anchor_generator", "rpn_head", "proposal_generator", "matcher")

    loss_names = ("rpn_objectness_loss", "rpn_box_loss")

    def __init__(
        self,
        anchor_generator=None,
        rpn_head=None,
        proposal_generator=None,
        matcher=None,
        clip_anchors_to_image=False,
        clip_anchors_at_inference=True,
        minibatch_size=256,
        positive_balance_fraction=0.5,
        localization_loss_weight=2.0,
        objectness_loss_weight=1.0,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)  # anchors and proposals stay float32
        super().__init__(**kwargs)
        self.anchor_generator = anchor_generator or default_anchor_generator()
        num_anchors = self.anchor_generator.num_anchors_per_location()
        if len(set(num_anchors)) != 1:
            raise ValueError(
                "the RPN head is shared over feature maps, so every map needs the same number "
                f"of anchors per location; the anchor generator gives {num_anchors}"
            )
        self.rpn_head = rpn_head or RPNHead(num_anchors[0], name="rpn_head")
        self.proposal_generator = proposal_generator or ProposalGenerator()
        self.matcher = matcher or ArgmaxMatcher(0.7, 0.3, force_match_for_each_row=True)
        self.clip_anchors_to_image = bool(clip_anchors_to_image)
        self.clip_anchors_at_inference = bool(clip_anchors_at_inference)
        self.minibatch_size = minibatch_size
        self.positive_balance_fraction = positive_balance_fraction
        self.localization_loss_weight = localization_loss_weight
        self.objectness_loss_weight = objectness_loss_weight
        self._target_assigner = TargetAssigner(self.matcher, self.proposal_generator.box_coder)
        self._sampler = BalancedPositiveNegativeSampler(positive_balance_fraction)
        self._objectness_loss = WeightedSoftmaxClassificationLoss()
        self._localization_loss = WeightedSmoothL1LocalizationLoss()

    @property
    def max_proposals(self):
        """Proposals per image (`P`): `proposal_generator.max_proposals`."""
        return self.proposal_generator.max_proposals

    def build(self, feature_maps_shape, window_shape=None):
        if not self.rpn_head.built:
            self.rpn_head.build(feature_maps_shape)

    def call(self, feature_maps, image_size, window, training=None):
        maps = list(feature_maps) if isinstance(feature_maps, (list, tuple)) else [feature_maps]
        box_encodings, objectness_logits = self.rpn_head(maps, training=training)
        anchors = tf.concat(
            self.anchor_generator.generate([static_or_dynamic_hw(m) for m in maps], *image_size),
            axis=0,
        )
        if self.clip_anchors_to_image or (self.clip_anchors_at_inference and not training):
            anchors = clip_boxes(anchors)
        generated = self.proposal_generator(
            tf.stop_gradient(box_encodings), tf.stop_gradient(objectness_logits), anchors, window
        )
        return {
            "anchors": anchors,
            "rpn_box_encodings": box_encodings,
            "rpn_objectness_logits": objectness_logits,
            "proposals": generated["proposals"],
            "proposal_scores": generated["scores"],
            "num_proposals": generated["num_proposals"],
        }

    def compute_losses(self, outputs, gt_boxes, gt_labels):
        """The RPN losses of a batch.

        Args:
            outputs: what `call` returned (`"anchors"`, `"rpn_box_encodings"`,
                `"rpn_objectness_logits"`).
            gt_boxes: float32 `[B, N, 4]` `rel_yxyx` of the padded input, -1 padding rows.
            gt_labels: int32 `[B, N]`, -1 on padding rows.

        Returns:
            `{"rpn_objectness_loss": scalar, "rpn_box_loss": scalar}`, weighted and divided
            by the sampled anchors of the global batch.
        """
        targets = self._target_assigner.assign(outputs["anchors"], gt_boxes, gt_labels)
        positives = targets["cls_targets"] > 0
        sampled = tf.cast(
            self._sampler.subsample(targets["cls_weights"] > 0, positives, self.minibatch_size),
            tf.float32,
        )
        objectness_losses = self._objectness_loss(
            outputs["rpn_objectness_logits"], tf.one_hot(tf.cast(positives, tf.int32), 2), sampled
        )
        box_losses = self._localization_loss(
            outputs["rpn_box_encodings"], targets["reg_targets"], sampled * targets["reg_weights"]
        )
        normalizer = global_normalizer(tf.reduce_sum(sampled))
        return {
            "rpn_objectness_loss": self.objectness_loss_weight
            * tf.reduce_sum(objectness_losses)
            / normalizer,
            "rpn_box_loss": self.localization_loss_weight * tf.reduce_sum(box_losses) / normalizer,
        }

    @classmethod
    def from_config(cls, config):
        # RPNs saved before 2026-12-05 clipped the anchors only with clip_anchors_to_image.
        return super().from_config({"clip_anchors_at_inference": False, **config})

    def get_config(self):
        components = self.component_configs()
        # The proposal generator has no weights, so nothing to build when loading (Keras would
        # warn that its NMS sublayer is left unbuilt).
        components["proposal_generator"].pop("build_config", None)
        return {
            **super().get_config(),
            **components,
            "clip_anchors_to_image": self.clip_anchors_to_image,
            "clip_anchors_at_inference": self.clip_anchors_at_inference,
            "minibatch_size": self.minibatch_size,
            "positive_balance_fraction": self.positive_balance_fraction,
            "localization_loss_weight": self.localization_loss_weight,
            "objectness_loss_weight": self.objectness_loss_weight,
        }
