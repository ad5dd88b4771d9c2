"""`kdet.FasterRCNN`: the two-stage meta-architecture of the TF OD API (and its FPN variant)."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import clip_boxes
from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
from kdet.feature_extractors.registry import build_feature_extractor
from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.crop_and_resize_roi_pooler import CropAndResizeRoIPooler
from kdet.layers.grid_anchor_generator import GridAnchorGenerator
from kdet.layers.image_resizer import from_padded_frame
from kdet.layers.image_resizer import to_padded_frame
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression
from kdet.layers.multi_class_non_max_suppression import with_model_arguments
from kdet.layers.multi_level_roi_align import MultiLevelRoIAlign
from kdet.layers.multiscale_grid_anchor_generator import MultiscaleGridAnchorGenerator
from kdet.layers.proposal_generator import ProposalGenerator
from kdet.losses.weighted_smooth_l1_localization_loss import WeightedSmoothL1LocalizationLoss
from kdet.losses.weighted_softmax_classification_loss import WeightedSoftmaxClassificationLoss
from kdet.models.distribution import global_normalizer
from kdet.models.faster_rcnn.box_classifier_head import BoxClassifierHead
from kdet.models.faster_rcnn.rpn_head import RPNHead
from kdet.models.object_detector import ObjectDetector
from kdet.models.object_detector import static_or_dynamic_hw
from kdet.models.object_detector import to_label_ids
from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from kdet.targets.target_assigner import TargetAssigner

# The largest FPN level RoIs are cropped from (higher levels only feed the RPN, as in FPN).
_MAX_ROI_LEVEL = 5


def default_second_stage_non_max_suppression():
    """`kdet.FasterRCNN`'s default second-stage post-processing: softmax scores, the TF OD API
    `BatchNonMaxSuppression` defaults (score threshold 0.0, IoU 0.6, 100 per class, 100 in
    total)."""
    return MultiClassNonMaxSuppression(score_converter="softmax")


@keras.saving.register_keras_serializable(package="kdet")
class FasterRCNN(ObjectDetector):
    """Faster R-CNN: a region proposal network, then a box classifier on cropped proposals.

    Expresses the TF OD API `faster_rcnn { … }` config block. One training step runs ONE
    forward pass: features → RPN → proposals (no gradient through them) → groundtruth-aware
    sampling of `second_stage_batch_size` RoIs per image → crops → box classifier on the
    sampled RoIs. Inference classifies the top `first_stage_max_proposals` proposals and runs
    per-class NMS. FPN feature extractors (`is_fpn`) get multiscale anchors, an RPN shared over
    the pyramid levels and multilevel RoIAlign instead of crop-and-resize.

    Losses (each divided by a count summed over all replicas): `rpn_objectness_loss`,
    `rpn_box_loss` (normalized by the sampled anchors), `box_classifier_class_loss`,
    `box_classifier_box_loss` (normalized by the sampled RoIs).

    Args:
        num_classes: int. Object classes, background excluded.
        feature_extractor: a `kdet.feature_extractors.FasterRCNNFeatureExtractor` or the
            registered name of one (`"faster_rcnn_resnet50"`, `"faster_rcnn_resnet101"`,
            `"faster_rcnn_resnet50_fpn"`, `"faster_rcnn_mobilenet_v2"`, …).
        number_of_stages: 2 (the full model) or 1: the region proposal network alone, as
            the TF OD API builds it for `number_of_stages: 1`. Its detections are the
            proposals (label id 1, confidence the object probability, at most
            `first_stage_max_proposals`), training runs the RPN losses only (the box
            classifier losses are 0) and the box classifier is never built. Defaults to `2`.
        image_resizer: Defaults to `KeepAspectRatioResizer(600, 1024,
            pad_to_max_dimension=True)`.
        first_stage_anchor_generator: Defaults to `GridAnchorGenerator(scales=(0.25, 0.5, 1, 2),
            aspect_ratios=(0.5, 1, 2), anchor_stride=(stride, stride))` with the extractor's
            `first_stage_features_stride`, or for FPN extractors
            `MultiscaleGridAnchorGenerator(min_level, max_level, anchor_scale=8,
            aspect_ratios=(0.5, 1, 2), scales_per_octave=1)` over its levels.
        first_stage_matcher: the matcher of anchors to groundtruth for the RPN losses.
            Defaults to `ArgmaxMatcher(0.7, 0.3, force_match_for_each_row=True)` (the TF OD
            API's Faster R-CNN proposal target assigner).
        second_stage_matcher: the matcher of sampled RoIs to groundtruth for the box
            classifier losses. Defaults to `ArgmaxMatcher(0.5, 0.5)` (the TF OD API's
            detection target assigner: below 0.5 IoU is background).
        first_stage_box_predictor_depth: int. Defaults to `512`.
        first_stage_box_predictor_kernel_size: int. Defaults to `3`.
        first_stage_box_predictor_conv_hyperparams: a `kdet.layers.ConvHyperparams` of the RPN
            head's convolutions (see `RPNHead`: initializer, regularizer, batch norm; the
            activation is always ReLU6), or `None` for `RPNHead.default_conv_hyperparams()`.
        first_stage_box_predictor_kernel_regularizer: a regularizer replacing the one of
            `first_stage_box_predictor_conv_hyperparams` (the argument of `.keras` files
            written before it existed). Defaults to `None`.
        first_stage_atrous_rate: int. Dilation of the RPN convolution (TF OD API
            `first_stage_atrous_rate`; the extractor's own atrous layers follow from its
            `first_stage_features_stride`). Defaults to `1`.
        clip_anchors_to_image: bool. Clip the anchors to the (padded) input before target
            assignment and decoding (TF OD API `clip_anchors_to_image`). `False` keeps the
            anchors as generated, also those reaching past the input. Defaults to `False`.
        first_stage_nms_score_threshold: float. Proposals whose object probability is at or
            below it are dropped before NMS. Defaults to `0.0`.
        first_stage_nms_iou_threshold: float. Defaults to `0.7`.
        first_stage_max_proposals: int. Proposals kept per image. Defaults to `300`.
        first_stage_minibatch_size: int. Anchors sampled per image for the RPN losses.
            Defaults to `256`.
        first_stage_positive_balance_fraction: float. Defaults to `0.5`.
        first_stage_localization_loss_weight: float. Defaults to `2.0`.
        first_stage_objectness_loss_weight: float. Defaults to `1.0`.
        initial_crop_size: int. `crop_and_resize` size of each RoI (non-FPN). Defaults to `14`.
        maxpool_kernel_size: int. Max-pool after the crop (non-FPN). Defaults to `2`.
        maxpool_stride: int. Defaults to `2`.
        roi_align_crop_size: int. Multilevel RoIAlign output size (FPN). Defaults to `7`.
        second_stage_box_predictor: Defaults to `BoxClassifierHead(num_classes)`.
        second_stage_batch_size: int. RoIs sampled per image for the second-stage losses.
            Defaults to `64`.
        second_stage_balance_fraction: float. Positive fraction of the sampled RoIs.
            Defaults to `0.25`.
        second_stage_localization_loss_weight: float. Defaults to `2.0`.
        second_stage_classification_loss_weight: float. Defaults to `1.0`.
        second_stage_classification_loss: the loss of the box classifier's class logits
            (background column included): `kdet.losses.WeightedSoftmaxClassificationLoss`
            (the TF OD API default, with its `logit_scale`),
            `WeightedSigmoidClassificationLoss` or `SigmoidFocalClassificationLoss`. Use a
            `second_stage_non_max_suppression` score converter that matches it (sigmoid for
            sigmoid losses). Defaults to `WeightedSoftmaxClassificationLoss()`.
        add_groundtruth_to_proposals: bool. Let the groundtruth boxes compete with the
            proposals when sampling RoIs (torchvision does; it helps early training).
            Defaults to `True`.
        second_stage_non_max_suppression: a `kdet.layers.MultiClassNonMaxSuppression`: the
            TF OD API `second_stage_post_processing` (score converter and `logit_scale`
            applied to the class logits, background column dropped after; per-class or
            class-agnostic, hard or soft NMS over the class-specific boxes). Defaults to
            `default_second_stage_non_max_suppression()`: softmax, score threshold 0.0, IoU
            0.6, 100 detections per class and in total.
        score_threshold, iou_threshold, max_detections_per_class, max_detections: the
            arguments of `second_stage_non_max_suppression` that `kdet.FasterRCNN` configs
            saved before it existed carry; each replaces the default's value. Pass either
            these or `second_stage_non_max_suppression`. Default to `None`.
        bounding_box_format: see `ObjectDetector`. Defaults to `"yxyx"`.

    Example:
    ```python
    model = kdet.FasterRCNN(num_classes=3, feature_extractor="faster_rcnn_mobilenet_v2",
                            image_resizer=kdet.layers.FixedShapeResizer(128, 128))
    model.compile()
    model.fit(images, {"boxes": boxes, "labels": labels})
    detections = model.predict(images)
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497); TF OD API
        `meta_architectures/faster_rcnn_meta_arch.py`.
    """

    loss_names = (
        "rpn_objectness_loss",
        "rpn_box_loss",
        "box_classifier_class_loss",
        "box_classifier_box_loss",
    )
    component_names = (
        "feature_extractor",
        "image_resizer",
        "first_stage_anchor_generator",
        "first_stage_matcher",
        "second_stage_matcher",
        "second_stage_box_predictor",
        "second_stage_classification_loss",
        "second_stage_non_max_suppression",
    )

    def __init__(
        self,
        num_classes,
        feature_extractor,
        number_of_stages=2,
        image_resizer=None,
        first_stage_anchor_generator=None,
        first_stage_matcher=None,
        second_stage_matcher=None,
        first_stage_box_predictor_depth=512,
        first_stage_box_predictor_kernel_size=3,
        first_stage_box_predictor_conv_hyperparams=None,
        first_stage_box_predictor_kernel_regularizer=None,
        first_stage_atrous_rate=1,
        clip_anchors_to_image=False,
        first_stage_nms_score_threshold=0.0,
        first_stage_nms_iou_threshold=0.7,
        first_stage_max_proposals=300,
        first_stage_minibatch_size=256,
        first_stage_positive_balance_fraction=0.5,
        first_stage_localization_loss_weight=2.0,
        first_stage_objectness_loss_weight=1.0,
        initial_crop_size=14,
        maxpool_kernel_size=2,
        maxpool_stride=2,
        roi_align_crop_size=7,
        second_stage_box_predictor=None,
        second_stage_batch_size=64,
        second_stage_balance_fraction=0.25,
        second_stage_localization_loss_weight=2.0,
        second_stage_classification_loss_weight=1.0,
        add_groundtruth_to_proposals=True,
        second_stage_classification_loss=None,
        second_stage_non_max_suppression=None,
        score_threshold=None,
        iou_threshold=None,
        max_detections_per_class=None,
        max_detections=None,
        bounding_box_format="yxyx",
        **kwargs,
    ):
        super().__init__(num_classes, bounding_box_format=bounding_box_format, **kwargs)
        if number_of_stages not in (1, 2):
            raise ValueError(
                "number_of_stages must be 1 (the region proposal network alone) or 2; got "
                f"{number_of_stages} (a third, mask stage is not in kdet yet: issue 19)"
            )
        self.number_of_stages = number_of_stages
        second_stage_non_max_suppression = with_model_arguments(
            second_stage_non_max_suppression,
            default_second_stage_non_max_suppression(),
            "second_stage_non_max_suppression",
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_detections_per_class=max_detections_per_class,
            max_detections=max_detections,
        )
        self.second_stage_non_max_suppression = second_stage_non_max_suppression
        self.second_stage_classification_loss = (
            second_stage_classification_loss or WeightedSoftmaxClassificationLoss()
        )
        if isinstance(feature_extractor, str):
            feature_extractor = build_feature_extractor(feature_extractor)
        self.feature_extractor = feature_extractor
        self.image_resizer = image_resizer or KeepAspectRatioResizer(
            600, 1024, pad_to_max_dimension=True
        )
        self.first_stage_anchor_generator = (
            first_stage_anchor_generator or self._default_anchor_generator()
        )
        self.first_stage_box_predictor_depth = first_stage_box_predictor_depth
        self.first_stage_box_predictor_kernel_size = first_stage_box_predictor_kernel_size
        self.first_stage_box_predictor_conv_hyperparams = (
            conv_hyperparams_lib.with_legacy_regularization(
                conv_hyperparams_lib.get(first_stage_box_predictor_conv_hyperparams)
                or RPNHead.default_conv_hyperparams(),
                kernel_regularizer=first_stage_box_predictor_kernel_regularizer,
            )
        )
        self.first_stage_atrous_rate = first_stage_atrous_rate
        self.clip_anchors_to_image = bool(clip_anchors_to_image)
        self.first_stage_nms_score_threshold = first_stage_nms_score_threshold
        self.first_stage_nms_iou_threshold = first_stage_nms_iou_threshold
        self.first_stage_max_proposals = first_stage_max_proposals
        self.first_stage_minibatch_size = first_stage_minibatch_size
        self.first_stage_positive_balance_fraction = first_stage_positive_balance_fraction
        self.first_stage_localization_loss_weight = first_stage_localization_loss_weight
        self.first_stage_objectness_loss_weight = first_stage_objectness_loss_weight
        self.initial_crop_size = initial_crop_size
        self.maxpool_kernel_size = maxpool_kernel_size
        self.maxpool_stride = maxpool_stride
        self.roi_align_crop_size = roi_align_crop_size
        self.second_stage_box_predictor = second_stage_box_predictor or BoxClassifierHead(
            num_classes
        )
        self.second_stage_batch_size = second_stage_batch_size
        self.second_stage_balance_fraction = second_stage_balance_fraction
        self.second_stage_localization_loss_weight = second_stage_localization_loss_weight
        self.second_stage_classification_loss_weight = second_stage_classification_loss_weight
        self.add_groundtruth_to_proposals = add_groundtruth_to_proposals

        num_anchors = self.first_stage_anchor_generator.num_anchors_per_location()
        if len(set(num_anchors)) != 1:
            raise ValueError(
                "the RPN head is shared over feature maps, so every map needs the same number "
                f"of anchors per location; the anchor generator gives {num_anchors}"
            )
        self._rpn_head = RPNHead(
            num_anchors[0],
            depth=first_stage_box_predictor_depth,
            kernel_size=first_stage_box_predictor_kernel_size,
            dilation_rate=first_stage_atrous_rate,
            conv_hyperparams=self.first_stage_box_predictor_conv_hyperparams,
            name="rpn_head",
        )
        box_coder = FasterRcnnBoxCoder()
        self._box_coder = box_coder
        self._proposal_generator = ProposalGenerator(
            max_proposals=first_stage_max_proposals,
            nms_iou_threshold=first_stage_nms_iou_threshold,
            score_threshold=first_stage_nms_score_threshold,
            box_coder=box_coder,
        )
        if feature_extractor.is_fpn:
            self._roi_levels = (
                feature_extractor.fpn_min_level,
                min(feature_extractor.fpn_max_level, _MAX_ROI_LEVEL),
            )
            self._roi_cropper = MultiLevelRoIAlign(*self._roi_levels, crop_size=roi_align_crop_size)
        else:
            self._roi_cropper = CropAndResizeRoIPooler(
                initial_crop_size, maxpool_kernel_size, maxpool_stride
            )
        # TF OD API defaults: RPN matches at IoU 0.7 / 0.3 with force match; the second stage
        # at 0.5 (below is background).
        self.first_stage_matcher = first_stage_matcher or ArgmaxMatcher(
            0.7, 0.3, force_match_for_each_row=True
        )
        self.second_stage_matcher = second_stage_matcher or ArgmaxMatcher(0.5, 0.5)
        self._rpn_target_assigner = TargetAssigner(self.first_stage_matcher, box_coder)
        self._roi_target_assigner = TargetAssigner(self.second_stage_matcher, box_coder)
        self._rpn_sampler = BalancedPositiveNegativeSampler(first_stage_positive_balance_fraction)
        self._roi_sampler = BalancedPositiveNegativeSampler(second_stage_balance_fraction)
        self._classification_loss = WeightedSoftmaxClassificationLoss()
        self._localization_loss = WeightedSmoothL1LocalizationLoss()

    # The post-processing settings, read from `second_stage_non_max_suppression`.
    score_threshold = property(lambda self: self.second_stage_non_max_suppression.score_threshold)
    iou_threshold = property(lambda self: self.second_stage_non_max_suppression.iou_threshold)
    max_detections_per_class = property(
        lambda self: self.second_stage_non_max_suppression.max_detections_per_class
    )
    max_detections = property(lambda self: self.second_stage_non_max_suppression.max_detections)

    def _default_anchor_generator(self):
        extractor = self.feature_extractor
        if extractor.is_fpn:
            return MultiscaleGridAnchorGenerator(
                extractor.fpn_min_level,
                extractor.fpn_max_level,
                anchor_scale=8.0,
                aspect_ratios=(0.5, 1.0, 2.0),
                scales_per_octave=1,
            )
        stride = extractor.first_stage_features_stride
        return GridAnchorGenerator(
            scales=(0.25, 0.5, 1.0, 2.0),
            aspect_ratios=(0.5, 1.0, 2.0),
            anchor_stride=(stride, stride),
        )

    # -- the two stages -----------------------------------------------------------------------

    def _first_stage(self, images, training):
        """Raw images → features, RPN outputs, anchors and proposals (no gradient)."""
        resized, scale = self.resize_inputs(images)
        features = self.feature_extractor.extract_proposal_features(
            self.feature_extractor.preprocess(resized), training=training
        )
        maps = features if isinstance(features, (list, tuple)) else [features]
        rpn_box_encodings, rpn_objectness_logits = self._rpn_head(maps, training=training)
        anchors = tf.concat(
            self.first_stage_anchor_generator.generate(
                [static_or_dynamic_hw(m) for m in maps], *static_or_dynamic_hw(resized)
            ),
            axis=0,
        )
        if self.clip_anchors_to_image:
            anchors = clip_boxes(anchors)
        generated = self._proposal_generator(
            tf.stop_gradient(rpn_box_encodings),
            tf.stop_gradient(rpn_objectness_logits),
            anchors,
            scale,
        )
        proposals = generated["proposals"]
        return {
            "features": list(maps),
            "image_size": static_or_dynamic_hw(resized),
            "scale": scale,
            "anchors": anchors,
            "rpn_box_encodings": rpn_box_encodings,
            "rpn_objectness_logits": rpn_objectness_logits,
            "proposals": proposals,
            "proposal_scores": generated["scores"],
            "num_proposals": generated["num_proposals"],
        }

    def _second_stage(self, first_stage, rois, training):
        """RoIs `[B, R, 4]` rel_yxyx of the padded frame → class logits and box encodings."""
        maps = first_stage["features"]
        if self.feature_extractor.is_fpn:
            num_levels = self._roi_levels[1] - self._roi_levels[0] + 1
            crops = self._roi_cropper(
                maps[:num_levels], rois, image_size=first_stage["image_size"]
            )
        else:
            crops = self._roi_cropper(maps[0], rois)
        batch, num_rois = tf.shape(rois)[0], tf.shape(rois)[1]
        # The crop size is static (fully connected box classifiers are built from it).
        crops = tf.reshape(crops, [-1, *crops.shape[2:]])
        box_features = self.feature_extractor.extract_box_classifier_features(
            crops, training=training
        )
        class_logits, box_encodings = self.second_stage_box_predictor(
            box_features, training=training
        )
        # One box per class, or one for all classes (`share_box_across_classes`): broadcast.
        box_encodings = tf.reshape(box_encodings, [batch, num_rois, -1, 4])
        box_encodings = tf.broadcast_to(
            box_encodings, [batch, num_rois, self.num_classes, 4]
        )
        return {
            "class_logits": tf.reshape(class_logits, [batch, num_rois, self.num_classes + 1]),
            "box_encodings": box_encodings,
        }

    def call(self, images, training=None):
        """Raw images → proposals and their classification (inference graph).

        `images`: raw `[B, H, W, 3]`, or resized ones with their true shapes (see
        `ObjectDetector.resize_inputs`); proposals and detections are clipped to each image's
        content window, as the TF OD API does with `true_image_shapes`.

        Returns a dict with `"proposals"` `[B, P, 4]` (rel_yxyx of the resized, padded frame,
        -1 padded), `"class_logits"` `[B, P, num_classes + 1]`, `"box_encodings"`
        `[B, P, num_classes, 4]`, `"scale"` `[B, 2]` (content fraction of the frame per image)
        and the RPN outputs.
        """
        first_stage = self._first_stage(images, training)
        outputs = {
            name: first_stage[name]
            for name in (
                "proposals", "proposal_scores", "num_proposals", "scale",
                "rpn_box_encodings", "rpn_objectness_logits",
            )
        }  # fmt: skip
        if self.number_of_stages == 1:
            return outputs
        return {**outputs, **self._second_stage(first_stage, first_stage["proposals"], training)}

    def forward_train(self, images, gt_boxes, gt_labels, training):
        first_stage = self._first_stage(images, training)
        gt_frame = to_padded_frame(gt_boxes, first_stage["scale"])
        if self.number_of_stages == 1:
            return {**first_stage, "gt_frame": gt_frame}
        rois = self._sample_rois(first_stage["proposals"], gt_frame, gt_labels)
        second_stage = self._second_stage(first_stage, rois["rois"], training)
        return {**first_stage, **second_stage, **rois, "gt_frame": gt_frame}

    def _sample_rois(self, proposals, gt_boxes, gt_labels):
        """Picks `second_stage_batch_size` RoIs per image, balanced, with their targets.

        Returns `"rois"` `[B, S, 4]` (-1 rows where an image had fewer candidates),
        `"roi_cls_targets"` `[B, S]`, `"roi_reg_targets"` `[B, S, 4]`, `"roi_weights"` `[B, S]`.
        """
        candidates = proposals
        if self.add_groundtruth_to_proposals:
            candidates = tf.concat([proposals, gt_boxes], axis=1)
        targets = self._roi_target_assigner.assign(candidates, gt_boxes, gt_labels)
        num_candidates = candidates.shape[1]
        sample_size = self.second_stage_batch_size
        if num_candidates is not None:
            sample_size = min(sample_size, num_candidates)
        sampled = self._roi_sampler.subsample(
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
        }

    # -- losses and post-processing -----------------------------------------------------------

    def compute_losses(self, outputs, gt_boxes, gt_labels):
        rpn_targets = self._rpn_target_assigner.assign(
            outputs["anchors"], outputs["gt_frame"], gt_labels
        )
        positives = rpn_targets["cls_targets"] > 0
        sampled = tf.cast(
            self._rpn_sampler.subsample(
                rpn_targets["cls_weights"] > 0, positives, self.first_stage_minibatch_size
            ),
            tf.float32,
        )
        objectness_losses = self._classification_loss(
            outputs["rpn_objectness_logits"], tf.one_hot(tf.cast(positives, tf.int32), 2), sampled
        )
        rpn_box_losses = self._localization_loss(
            outputs["rpn_box_encodings"],
            rpn_targets["reg_targets"],
            sampled * rpn_targets["reg_weights"],
        )
        rpn_normalizer = global_normalizer(tf.reduce_sum(sampled))
        rpn_losses = {
            "rpn_objectness_loss": self.first_stage_objectness_loss_weight
            * tf.reduce_sum(objectness_losses)
            / rpn_normalizer,
            "rpn_box_loss": self.first_stage_localization_loss_weight
            * tf.reduce_sum(rpn_box_losses)
            / rpn_normalizer,
        }
        if self.number_of_stages == 1:
            zero = tf.zeros([], tf.float32)
            return {
                **rpn_losses, "box_classifier_class_loss": zero, "box_classifier_box_loss": zero
            }

        roi_weights = outputs["roi_weights"]
        roi_cls_targets = outputs["roi_cls_targets"]
        class_losses = self.second_stage_classification_loss(
            outputs["class_logits"], tf.one_hot(roi_cls_targets, self.num_classes + 1), roi_weights
        )
        # Class-specific box encodings: the loss reads the one of the groundtruth class.
        target_class = tf.maximum(roi_cls_targets - 1, 0)
        predicted = tf.gather(outputs["box_encodings"], target_class, batch_dims=2)
        box_losses = self._localization_loss(
            predicted,
            outputs["roi_reg_targets"],
            roi_weights * tf.cast(roi_cls_targets > 0, tf.float32),
        )
        roi_normalizer = global_normalizer(tf.reduce_sum(roi_weights))
        return {
            **rpn_losses,
            "box_classifier_class_loss": self.second_stage_classification_loss_weight
            * tf.reduce_sum(class_losses)
            / roi_normalizer,
            "box_classifier_box_loss": self.second_stage_localization_loss_weight
            * tf.reduce_sum(box_losses)
            / roi_normalizer,
        }

    def postprocess(self, outputs):
        proposals = outputs["proposals"]
        if self.number_of_stages == 1:
            # The proposals are the detections, all of one class (the TF OD API's class 0).
            valid = tf.reduce_any(proposals >= 0.0, axis=-1)
            boxes = clip_boxes(from_padded_frame(proposals, outputs["scale"]))
            return {
                "boxes": tf.where(valid[..., None], boxes, -1.0),
                "labels": tf.where(valid, 1, -1),
                "confidences": outputs["proposal_scores"],
                "num_detections": outputs["num_proposals"],
            }
        boxes = self._box_coder.decode(outputs["box_encodings"], proposals[:, :, None, :])
        boxes = clip_boxes(from_padded_frame(boxes, outputs["scale"]))
        nms = self.second_stage_non_max_suppression
        # Scores of every column, then the background column is dropped (the TF OD API).
        scores = nms.convert_scores(outputs["class_logits"])[..., 1:]
        valid = tf.reduce_any(proposals >= 0.0, axis=-1)
        scores = scores * tf.cast(valid, tf.float32)[..., None]
        return to_label_ids(nms(boxes, scores))

    @classmethod
    def from_config(cls, config):
        # Configs saved before these components existed have no entry: the defaults (and,
        # for the post-processing, the scalar arguments they carry).
        config = dict(config)
        for name in (
            "first_stage_matcher",
            "second_stage_matcher",
            "second_stage_classification_loss",
            "second_stage_non_max_suppression",
        ):
            config.setdefault(name, None)
        return super().from_config(config)

    def get_config(self):
        return {
            **super().get_config(),
            "number_of_stages": self.number_of_stages,
            "first_stage_box_predictor_depth": self.first_stage_box_predictor_depth,
            "first_stage_box_predictor_kernel_size": self.first_stage_box_predictor_kernel_size,
            "first_stage_box_predictor_conv_hyperparams": keras.saving.serialize_keras_object(
                self.first_stage_box_predictor_conv_hyperparams
            ),
            "first_stage_atrous_rate": self.first_stage_atrous_rate,
            "clip_anchors_to_image": self.clip_anchors_to_image,
            "first_stage_nms_score_threshold": self.first_stage_nms_score_threshold,
            "first_stage_nms_iou_threshold": self.first_stage_nms_iou_threshold,
            "first_stage_max_proposals": self.first_stage_max_proposals,
            "first_stage_minibatch_size": self.first_stage_minibatch_size,
            "first_stage_positive_balance_fraction": self.first_stage_positive_balance_fraction,
            "first_stage_localization_loss_weight": self.first_stage_localization_loss_weight,
            "first_stage_objectness_loss_weight": self.first_stage_objectness_loss_weight,
            "initial_crop_size": self.initial_crop_size,
            "maxpool_kernel_size": self.maxpool_kernel_size,
            "maxpool_stride": self.maxpool_stride,
            "roi_align_crop_size": self.roi_align_crop_size,
            "second_stage_batch_size": self.second_stage_batch_size,
            "second_stage_balance_fraction": self.second_stage_balance_fraction,
            "second_stage_localization_loss_weight": self.second_stage_localization_loss_weight,
            "second_stage_classification_loss_weight": (
                self.second_stage_classification_loss_weight
            ),
            "add_groundtruth_to_proposals": self.add_groundtruth_to_proposals,
        }

