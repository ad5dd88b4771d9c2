"""`RoIHeads`: the second stage of `kdet.FasterRCNN` (TF OD API `second_stage_*`)."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import clip_boxes
from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
from kdet.layers.crop_and_resize_roi_pooler import CropAndResizeRoIPooler
from kdet.layers.image_resizer import from_padded_frame
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression
from kdet.layers.multi_class_non_max_suppression import suppress_then_clip
from kdet.layers.multi_level_roi_align import MultiLevelRoIAlign
from kdet.losses.weighted_smooth_l1_localization_loss import WeightedSmoothL1LocalizationLoss
from kdet.losses.weighted_softmax_classification_loss import WeightedSoftmaxClassificationLoss
from kdet.models.distribution import global_normalizer
from kdet.models.faster_rcnn.box_classifier_head import BoxClassifierHead
from kdet.models.object_detector import to_label_ids
from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from kdet.targets.target_assigner import TargetAssigner
from kdet.utils.components import ComponentsConfig


def default_non_max_suppression():
    """`RoIHeads`' default post-processing: softmax scores, the TF OD API
    `BatchNonMaxSuppression` defaults (score threshold 0.0, IoU 0.6, 100 per class, 100 in
    total)."""
    return MultiClassNonMaxSuppression(score_converter="softmax")


@keras.saving.register_keras_serializable(package="kdet")
class RoIHeads(ComponentsConfig, keras.layers.Layer):
    """The second stage of Faster R-CNN: RoI crops, box classifier, its losses, detections.

    Expresses the TF OD API `second_stage_*` fields (and `initial_crop_size`,
    `maxpool_kernel_size`, `maxpool_stride`) of the `faster_rcnn { … }` block. The box
    classifier features between the crops and `box_predictor` come from the feature
    extractor (`extract_box_classifier_features`, e.g. ResNet stage 5), which `kdet.FasterRCNN`
    owns; so the stage runs in three steps:

    1. `crop(feature_maps, rois, image_size)`: `roi_cropper` → crops `[B * R, h, w, C]`;
    2. the extractor's box classifier features of the crops `[B * R, ...]`;
    3. `roi_heads(box_features, rois)`: `box_predictor` → `{"class_logits" [B, R,
       num_classes + 1], "box_encodings" [B, R, num_classes, 4]}` (a box shared across
       classes is broadcast to every class).

    In training `sample(proposals, gt_boxes, gt_labels)` first picks `batch_size` RoIs per
    image (`balance_fraction` of them positive, matched by `matcher`) and `compute_losses`
    gives the class loss (`classification_loss`) and the smooth L1 box loss of the
    groundtruth class's encoding, divided by the sampled RoIs of the global batch.
    `postprocess` decodes the class boxes against the proposals and runs
    `non_max_suppression` on them, then clips the kept boxes to the image and drops those
    left with no area (`clip_after_non_max_suppression`, the TF OD API's order).

    Args:
        num_classes: int. Object classes, background excluded.
        roi_cropper: a `kdet.layers.CropAndResizeRoIPooler` (crops the first feature map;
            TF OD API `initial_crop_size`, `maxpool_kernel_size`, `maxpool_stride`) or a
            `kdet.layers.MultiLevelRoIAlign` (crops from the pyramid levels
            `min_level..max_level`, the first maps of the extractor's list). Defaults to
            `kdet.layers.CropAndResizeRoIPooler()` (14, max-pooled 2/2); `kdet.FasterRCNN`
            passes one matching its feature extractor.
        box_predictor: a layer mapping box classifier features `[N, ...]` to
            `(class_logits [N, num_classes + 1], box_encodings [N, num_boxes, 4])`, with
            `num_boxes` `num_classes` or 1. Defaults to `BoxClassifierHead(num_classes)`
            (TF OD API `second_stage_box_predictor`). A predictor with `takes_rois = True`
            (`RFCNBoxPredictor`) is called with the RoIs too: `(box_features, rois)`.
        box_coder: the coder of the box encodings against the RoIs. Defaults to
            `kdet.boxes.FasterRcnnBoxCoder()` (scales 10, 10, 5, 5).
        matcher: the matcher of sampled RoIs to groundtruth. Defaults to
            `ArgmaxMatcher(0.5, 0.5)` (the TF OD API's detection target assigner: below 0.5
            IoU is background).
        classification_loss: the loss of the class logits, background column included:
            `kdet.losses.WeightedSoftmaxClassificationLoss` (the TF OD API default),
            `WeightedSigmoidClassificationLoss` or `SigmoidFocalClassificationLoss`; use a
            `non_max_suppression` score converter that matches it. Defaults to
            `WeightedSoftmaxClassificationLoss()`.
        non_max_suppression: a `kdet.layers.MultiClassNonMaxSuppression`, the TF OD API
            `second_stage_post_processing` (score converter and `logit_scale` applied to the
            class logits, background column dropped after; per-class or class-agnostic, hard
            or soft NMS over the class boxes). Defaults to `default_non_max_suppression()`:
            softmax, score threshold 0.0, IoU 0.6, 100 per class and in total.
        batch_size: int. RoIs sampled per image for the losses (TF OD API
            `second_stage_batch_size`). Defaults to `64`.
        balance_fraction: float. Largest positive fraction of the sampled RoIs
            (`second_stage_balance_fraction`). Defaults to `0.25`.
        localization_loss_weight: float. Defaults to `2.0` (the TF OD API proto: 1.0).
        classification_loss_weight: float. Defaults to `1.0`.
        add_groundtruth_to_proposals: bool. Let the groundtruth boxes compete with the
            proposals when sampling RoIs (torchvision does; it helps early training; the
            TF OD API does not). Defaults to `True`.
        clip_after_non_max_suppression: bool. As the TF OD API: suppress on the decoded
            boxes as they are, then clip the kept ones to the image, drop those left with no
            area and keep the best `max_detections` (NMS keeps `max_detections_per_class` per
            class until then). `False` (`RoIHeads` saved before 2026-12): clip, then
            suppress. Defaults to `True`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        box_features: the extractor's box classifier features of `crop`'s crops, `[B * R,
            ...]`.
        rois: float32 `[B, R, 4]`, the RoIs the crops were taken from.

    Returns:
        `{"class_logits": float32 [B, R, num_classes + 1], "box_encodings": float32 [B, R,
        num_classes, 4]}`.

    Example:
    ```python
    roi_heads = kdet.models.faster_rcnn.RoIHeads(
        3, kdet.layers.CropAndResizeRoIPooler(8), batch_size=32
    )
    rois = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]]])
    crops = roi_heads.crop([tf.zeros([1, 16, 16, 32])], rois, image_size=(128, 128))
    roi_heads(crops, rois)["box_encodings"].shape  # (1, 2, 3, 4)
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497); TF OD API
        `meta_architectures/faster_rcnn_meta_arch.py` (second stage).
    """

    component_names = (
        "roi_cropper",
        "box_predictor",
        "box_coder",
        "matcher",
        "classification_loss",
        "non_max_suppression",
    )

    loss_names = ("box_classifier_class_loss", "box_classifier_box_loss")

    def __init__(
        self,
        num_classes,
        roi_cropper=None,
        box_predictor=None,
        box_coder=None,
        matcher=None,
        classification_loss=None,
        non_max_suppression=None,
        batch_size=64,
        balance_fraction=0.25,
        localization_loss_weight=2.0,
        classification_loss_weight=1.0,
        add_groundtruth_to_proposals=True,
        clip_after_non_max_suppression=True,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)  # RoIs and boxes stay float32
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.roi_cropper = roi_cropper or CropAndResizeRoIPooler()
        self.box_predictor = box_predictor or BoxClassifierHead(num_classes)
        predicted_classes = getattr(self.box_predictor, "num_classes", num_classes)
        if predicted_classes != num_classes:
            raise ValueError(
                f"RoIHeads has num_classes={num_classes} but its box_predictor predicts "
                f"{predicted_classes} classes: build it with the same num_classes"
            )
        self.box_coder = box_coder or FasterRcnnBoxCoder()
        self.matcher = matcher or ArgmaxMatcher(0.5, 0.5)
        self.classification_loss = classification_loss or WeightedSoftmaxClassificationLoss()
        self.non_max_suppression = non_max_suppression or default_non_max_suppression()
        self.batch_size = batch_size
        self.balance_fraction = balance_fraction
        self.localization_loss_weight = localization_loss_weight
        self.classification_loss_weight = classification_loss_weight
        self.add_groundtruth_to_proposals = bool(add_groundtruth_to_proposals)
        self.clip_after_non_max_suppression = bool(clip_after_non_max_suppression)
        self._target_assigner = TargetAssigner(self.matcher, self.box_coder)
        self._sampler = BalancedPositiveNegativeSampler(balance_fraction)
        self._localization_loss = WeightedSmoothL1LocalizationLoss()

    def build(self, box_features_shape, rois_shape=None):
        if not self.box_predictor.built:
            self.box_predictor.build(box_features_shape)

    def crop(self, feature_maps, rois, image_size):
        """The `roi_cropper` crops of every RoI, one row per RoI.

        Args:
            feature_maps: list of float `[B, h, w, C]`, the extractor's proposal features
                (one map, or the pyramid levels finest first).
            rois: float32 `[B, R, 4]` `rel_yxyx` of the padded input, -1 padding rows.
            image_size: `(height, width)` of the padded input in pixels.

        Returns:
            `[B * R, crop_h, crop_w, C]` in the features' dtype (the crop size is static).
        """
        cropper = self.roi_cropper
        if isinstance(cropper, MultiLevelRoIAlign):
            num_levels = cropper.max_level - cropper.min_level + 1
            crops = cropper(list(feature_maps[:num_levels]), rois, image_size=image_size)
        else:
            crops = cropper(feature_maps[0], rois)
        return tf.reshape(crops, [-1, *crops.shape[2:]])

    def call(self, box_features, rois, training=None):
        batch, num_rois = tf.shape(rois)[0], tf.shape(rois)[1]
        if getattr(self.box_predictor, "takes_rois", False):
            # R-FCN: the features are whole maps, which the predictor crops at the RoIs.
            class_logits, box_encodings = self.box_predictor(
                box_features, rois, training=training
            )
        else:
            class_logits, box_encodings = self.box_predictor(box_features, training=training)
        # One box per class, or one for all classes (`share_box_across_classes`): broadcast.
        box_encodings = tf.reshape(box_encodings, [batch, num_rois, -1, 4])
        box_encodings = tf.broadcast_to(box_encodings, [batch, num_rois, self.num_classes, 4])
        return {
            "class_logits": tf.reshape(class_logits, [batch, num_rois, self.num_classes + 1]),
            "box_encodings": box_encodings,
        }

    def sample(self, proposals, gt_boxes, gt_labels):
        """Picks `batch_size` RoIs per image, balanced, with their targets.

        Args:
            proposals: float32 `[B, P, 4]` `rel_yxyx` of the padded input, -1 padding rows.
            gt_boxes: float32 `[B, N, 4]` `rel_yxyx` of the padded input, -1 padding rows.
            gt_labels: int32 `[B, N]`, -1 on padding rows.

        Returns:
            `"rois"` float32 `[B, S, 4]` (-1 rows where an image had fewer candidates),
            `"roi_cls_targets"` int32 `[B, S]`, `"roi_reg_targets"` float32 `[B, S, 4]`,
            `"roi_weights"` float32 `[B, S]`, `"roi_matched_gt"` int32 `[B, S]` (the
            groundtruth row each RoI matched, negative for none), with `S = min(batch_size,
            candidates)`.
        """
        candidates = proposals
        if self.add_groundtruth_to_proposals:
            candidates = tf.concat([proposals, gt_boxes], axis=1)
        targets = self._target_assigner.assign(candidates, gt_boxes, gt_labels)
        sample_size = self.batch_size
        if candidates.shape[1] is not None:
            sample_size = min(sample_size, candidates.shape[1])
        sampled = self._sampler.subsample(
            targets["cls_weights"] > 0, targets["cls_targets"] > 0, sample_size
        )
        # A fixed number of RoIs per image keeps shapes static: the sampled ones first.
        indices = tf.math.top_k(tf.cast(sampled, tf.float32), k=sample_size, sorted=True).indices
        weights = tf.cast(tf.gather(sampled, indices, batch_dims=1), tf.float32)
        rois = tf.gather(candidates, indices, batch_dims=1)
        return {
            "rois": tf.where(weights[..., None] > 0, rois, -1.0),
            "roi_cls_targets": tf.gather(targets["cls_targets"], indices, batch_dims=1),
            "roi_reg_targets": tf.gather(targets["reg_targets"], indices, batch_dims=1),
            "roi_weights": weights,
            "roi_matched_gt": tf.gather(targets["match"], indices, batch_dims=1),
        }

    def compute_losses(self, outputs):
        """The box classifier losses of sampled RoIs.

        Args:
            outputs: `sample`'s dict joined with `call`'s on its `"rois"`.

        Returns:
            `{"box_classifier_class_loss": scalar, "box_classifier_box_loss": scalar}`,
            weighted and divided by the sampled RoIs of the global batch.
        """
        weights = outputs["roi_weights"]
        cls_targets = outputs["roi_cls_targets"]
        class_losses = self.classification_loss(
            outputs["class_logits"], tf.one_hot(cls_targets, self.num_classes + 1), weights
        )
        # Class-specific box encodings: the loss reads the one of the groundtruth class.
        predicted = tf.gather(
            outputs["box_encodings"], tf.maximum(cls_targets - 1, 0), batch_dims=2
        )
        box_losses = self._localization_loss(
            predicted, outputs["roi_reg_targets"], weights * tf.cast(cls_targets > 0, tf.float32)
        )
        normalizer = global_normalizer(tf.reduce_sum(weights))
        return {
            "box_classifier_class_loss": self.classification_loss_weight
            * tf.reduce_sum(class_losses)
            / normalizer,
            "box_classifier_box_loss": self.localization_loss_weight
            * tf.reduce_sum(box_losses)
            / normalizer,
        }

    def postprocess(self, outputs):
        """Class boxes of the proposals → detections.

        Args:
            outputs: `"proposals"` float32 `[B, P, 4]` (-1 padding rows), `"scale"` float32
                `[B, 2]` (content fraction of the padded input), and `call`'s outputs on the
                proposals.

        Returns:
            The predictions dict of `kdet.models.ObjectDetector.postprocess`: boxes `rel_yxyx`
            of the input images, label ids 1..num_classes.
        """
        proposals = outputs["proposals"]
        boxes = self.box_coder.decode(outputs["box_encodings"], proposals[:, :, None, :])
        boxes = from_padded_frame(boxes, outputs["scale"])
        # Scores of every column, then the background column is dropped (the TF OD API).
        nms = self.non_max_suppression
        scores = nms.convert_scores(outputs["class_logits"])[..., 1:]
        valid = tf.reduce_any(proposals >= 0.0, axis=-1)
        scores = scores * tf.cast(valid, tf.float32)[..., None]
        if not self.clip_after_non_max_suppression:
            return to_label_ids(nms(clip_boxes(boxes), scores))
        return to_label_ids(suppress_then_clip(nms, boxes, scores))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            **self.component_configs(),
            "batch_size": self.batch_size,
            "balance_fraction": self.balance_fraction,
            "localization_loss_weight": self.localization_loss_weight,
            "classification_loss_weight": self.classification_loss_weight,
            "add_groundtruth_to_proposals": self.add_groundtruth_to_proposals,
            "clip_after_non_max_suppression": self.clip_after_non_max_suppression,
        }

    @classmethod
    def from_config(cls, config):
        # RoIHeads saved before 2026-12 clipped the boxes before NMS.
        return super().from_config({"clip_after_non_max_suppression": False, **config})
