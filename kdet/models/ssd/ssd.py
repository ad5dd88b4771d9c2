"""`kdet.SSD`: the single-shot detector meta-architecture of the TF OD API (SSD, RetinaNet)."""

import keras
import tensorflow as tf

from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
from kdet.feature_extractors.registry import build_feature_extractor
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.layers.image_resizer import from_padded_frame
from kdet.layers.image_resizer import to_padded_frame
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression
from kdet.layers.multi_class_non_max_suppression import suppress_then_clip
from kdet.layers.multi_class_non_max_suppression import with_model_arguments
from kdet.layers.ssd_anchor_generator import SSDAnchorGenerator
from kdet.losses.weighted_sigmoid_classification_loss import WeightedSigmoidClassificationLoss
from kdet.losses.weighted_smooth_l1_localization_loss import WeightedSmoothL1LocalizationLoss
from kdet.models.distribution import global_normalizer
from kdet.models.object_detector import ObjectDetector
from kdet.models.object_detector import static_or_dynamic_hw
from kdet.models.object_detector import to_label_ids
from kdet.models.ssd.convolutional_box_predictor import ConvolutionalBoxPredictor
from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.target_assigner import TargetAssigner


def default_non_max_suppression():
    """`kdet.SSD`'s default post-processing: sigmoid scores, the TF OD API
    `BatchNonMaxSuppression` defaults (score threshold 0.0, IoU 0.6, 100 per class, 100 in
    total)."""
    return MultiClassNonMaxSuppression(score_converter="sigmoid")


@keras.saving.register_keras_serializable(package="kdet")
class SSD(ObjectDetector):
    """Single Shot MultiBox Detector: one feature pyramid, one box predictor, anchors, NMS.

    Expresses the TF OD API `ssd { … }` config block: the image resizer, the feature
    extractor, the anchor generator, the box predictor, the box coder, the matcher (IoU
    similarity), the classification and localization losses and their weights, hard example
    mining, and post-processing (score converter and NMS). Components left as `None` get the
    defaults of the TF OD API `ssd_mobilenet_v2_coco` config, listed below; the scalar
    defaults are those of `ssd.proto` (an omitted config field and an omitted argument mean
    the same).

    Args:
        num_classes: int. Object classes, background excluded.
        feature_extractor: a `kdet.feature_extractors.SSDFeatureExtractor` (a Keras layer
            whose `call` returns feature maps finest first, with a `preprocess` method), or the
            registered name of one (e.g. `"ssd_mobilenet_v2"`), built with its defaults.
        image_resizer: `kdet.layers.FixedShapeResizer` or `KeepAspectRatioResizer`.
            Defaults to `FixedShapeResizer(300, 300)`.
        anchor_generator: `kdet.layers.SSDAnchorGenerator` or
            `MultiscaleGridAnchorGenerator`, one anchor grid per feature map. Defaults to
            `SSDAnchorGenerator()` (6 layers, scales 0.2..0.95, ratios 1, 2, 1/2, 3, 1/3).
        box_predictor: a layer mapping the feature maps to `(box_encodings [B, A, 4],
            class_logits [B, A, num_classes + 1])`, background in column 0 (`[B, A,
            num_classes]` without `add_background_class`). Defaults to
            `ConvolutionalBoxPredictor(num_classes, anchors per location, kernel_size=3)`.
        box_coder: Defaults to `FasterRcnnBoxCoder((10, 10, 5, 5))`.
        matcher: Defaults to `ArgmaxMatcher(0.5, 0.5, force_match_for_each_row=True)`.
        classification_loss: Defaults to `WeightedSigmoidClassificationLoss()`.
        localization_loss: Defaults to `WeightedSmoothL1LocalizationLoss()`.
        hard_example_miner: a `kdet.targets.HardExampleMiner`, or `None` for no mining (use
            it with a focal loss). Defaults to `None`.
        non_max_suppression: a `kdet.layers.MultiClassNonMaxSuppression`, the TF OD API
            `post_processing` message: score converter and `logit_scale` (applied to the class
            logits, background column included, before it is dropped), then per-class or
            class-agnostic, hard or soft NMS. Defaults to `default_non_max_suppression()`:
            sigmoid, score threshold 0.0, IoU 0.6, 100 detections per class and in total.
        classification_weight: float. Defaults to `1.0`.
        localization_weight: float. Defaults to `1.0`.
        normalize_loss_by_num_matches: bool. Divide both losses by the number of positive
            anchors, summed over the global batch. Defaults to `True`.
        normalize_loc_loss_by_codesize: bool. Also divide the localization loss by 4.
            Defaults to `False`.
        encode_background_as_zeros: bool. Give unmatched anchors an all-zero classification
            target instead of a one in the background column, so that no anchor is trained
            towards the background column (the TF OD API field of this name, set with a
            focal loss in its RetinaNet configs). Defaults to `False`.
        add_background_class: bool. `False`: the box predictor has no background column,
            unmatched anchors get all-zero classification targets and every class column is
            a score (TF OD API `add_background_class: false`, its EfficientDet configs; use a
            sigmoid score converter). Defaults to `True`.
        negative_class_weight: float. Classification weight of unmatched (negative) anchors
            (TF OD API `negative_class_weight`). Defaults to `1.0`.
        bounding_box_format: see `ObjectDetector`. Defaults to `"yxyx"`.
        score_converter, logit_scale, score_threshold, iou_threshold,
            max_detections_per_class, max_detections: older arguments, applied to
            `non_max_suppression` (the model keeps them as read-only properties); configs and
            `.keras` files of models saved with them still load.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("ssd_mobilenet_v2")
    model = kdet.SSD(num_classes=3, feature_extractor=extractor,
                     image_resizer=kdet.layers.FixedShapeResizer(128, 128))
    model.compile()
    model.fit(images, {"boxes": boxes, "labels": labels}, epochs=1)
    detections = model.predict(images)   # {"boxes", "labels", "confidences", "num_detections"}
    ```

    Reference:
        [Liu et al., 2016](https://arxiv.org/abs/1512.02325); TF OD API
        `meta_architectures/ssd_meta_arch.py`.
    """

    loss_names = ("localization_loss", "classification_loss")
    component_names = (
        "feature_extractor",
        "image_resizer",
        "anchor_generator",
        "box_predictor",
        "box_coder",
        "matcher",
        "classification_loss",
        "localization_loss",
        "hard_example_miner",
        "non_max_suppression",
    )

    def __init__(
        self,
        num_classes,
        feature_extractor,
        image_resizer=None,
        anchor_generator=None,
        box_predictor=None,
        box_coder=None,
        matcher=None,
        classification_loss=None,
        localization_loss=None,
        hard_example_miner=None,
        non_max_suppression=None,
        classification_weight=1.0,
        localization_weight=1.0,
        normalize_loss_by_num_matches=True,
        normalize_loc_loss_by_codesize=False,
        encode_background_as_zeros=False,
        add_background_class=True,
        negative_class_weight=1.0,
        bounding_box_format="yxyx",
        score_converter=None,
        logit_scale=None,
        score_threshold=None,
        iou_threshold=None,
        max_detections_per_class=None,
        max_detections=None,
        **kwargs,
    ):
        super().__init__(num_classes, bounding_box_format=bounding_box_format, **kwargs)
        self.non_max_suppression = with_model_arguments(
            non_max_suppression,
            default_non_max_suppression(),
            "non_max_suppression",
            score_converter=score_converter,
            logit_scale=logit_scale,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_detections_per_class=max_detections_per_class,
            max_detections=max_detections,
        )
        if isinstance(feature_extractor, str):
            feature_extractor = build_feature_extractor(feature_extractor)
        self.feature_extractor = feature_extractor
        self.image_resizer = image_resizer or FixedShapeResizer(300, 300)
        self.anchor_generator = anchor_generator or SSDAnchorGenerator()
        self.add_background_class = bool(add_background_class)
        self.box_predictor = box_predictor or ConvolutionalBoxPredictor(
            num_classes,
            self.anchor_generator.num_anchors_per_location(),
            kernel_size=3,
            add_background_class=self.add_background_class,
        )
        predicts_background = getattr(self.box_predictor, "add_background_class", True)
        if predicts_background != self.add_background_class:
            raise ValueError(
                f"add_background_class is {self.add_background_class} but the box predictor's "
                f"add_background_class is {predicts_background}: build it with the same value"
            )
        self.box_coder = box_coder or FasterRcnnBoxCoder()
        self.matcher = matcher or ArgmaxMatcher(0.5, 0.5, force_match_for_each_row=True)
        self.classification_loss = classification_loss or WeightedSigmoidClassificationLoss()
        self.localization_loss = localization_loss or WeightedSmoothL1LocalizationLoss()
        self.hard_example_miner = hard_example_miner
        self.classification_weight = classification_weight
        self.localization_weight = localization_weight
        self.normalize_loss_by_num_matches = normalize_loss_by_num_matches
        self.normalize_loc_loss_by_codesize = normalize_loc_loss_by_codesize
        self.encode_background_as_zeros = encode_background_as_zeros
        self.negative_class_weight = negative_class_weight
        self._target_assigner = TargetAssigner(self.matcher, self.box_coder)

    # The post-processing settings, as the model arguments they were before
    # `non_max_suppression` (TFLite export and older code read them here).
    score_converter = property(lambda self: self.non_max_suppression.score_converter)
    logit_scale = property(lambda self: self.non_max_suppression.logit_scale)
    score_threshold = property(lambda self: self.non_max_suppression.score_threshold)
    iou_threshold = property(lambda self: self.non_max_suppression.iou_threshold)
    max_detections_per_class = property(
        lambda self: self.non_max_suppression.max_detections_per_class
    )
    max_detections = property(lambda self: self.non_max_suppression.max_detections)

    def call(self, images, training=None):
        """Raw images `[B, H, W, 3]` (or resized ones with their true shapes, see
        `ObjectDetector.resize_inputs`) → `{"box_encodings" [B, A, 4], "class_logits"
        [B, A, num_classes + 1] (`num_classes` without `add_background_class`), "anchors"
        [A, 4] rel_yxyx of the resized frame, "scale" [B, 2]}` (the fraction of the frame
        each image's content fills).
        """
        resized, scale = self.resize_inputs(images)
        features = self.feature_extractor(
            self.feature_extractor.preprocess(resized), training=training
        )
        box_encodings, class_logits = self.box_predictor(features, training=training)
        return {
            "box_encodings": box_encodings,
            "class_logits": class_logits,
            "anchors": self._anchors(features, resized),
            "scale": scale,
        }

    def _anchors(self, features, resized):
        """Anchors of every feature map, concatenated: float32 `[num_anchors, 4]` rel_yxyx."""
        feature_map_shapes = [static_or_dynamic_hw(feature) for feature in features]
        height, width = static_or_dynamic_hw(resized)
        return tf.concat(
            self.anchor_generator.generate(feature_map_shapes, height, width), axis=0
        )

    def forward_train(self, images, gt_boxes, gt_labels, training):
        return self(images, training=training)

    def compute_losses(self, outputs, gt_boxes, gt_labels):
        anchors = outputs["anchors"]
        targets = self._target_assigner.assign(
            anchors, to_padded_frame(gt_boxes, outputs["scale"]), gt_labels
        )
        if not self.add_background_class:
            # No background column: unmatched anchors (class 0 → -1) have all-zero targets.
            class_targets = tf.one_hot(targets["cls_targets"] - 1, self.num_classes)
        else:
            depth = self.num_classes + 1
            class_targets = tf.one_hot(targets["cls_targets"], depth)
            if self.encode_background_as_zeros:
                # Only unmatched anchors have a one there.
                class_targets *= tf.one_hot(0, depth, on_value=0.0, off_value=1.0)
        class_weights = targets["cls_weights"]
        if self.negative_class_weight != 1.0:
            # Unmatched anchors: counted in the classification loss, not regressed.
            negative = (targets["reg_weights"] == 0.0) & (class_weights > 0.0)
            class_weights = tf.where(
                negative, self.negative_class_weight * class_weights, class_weights
            )
        classification_losses = self.classification_loss(
            outputs["class_logits"], class_targets, class_weights
        )
        localization_losses = self.localization_loss(
            outputs["box_encodings"], targets["reg_targets"], targets["reg_weights"]
        )
        if self.hard_example_miner is not None:
            decoded = self.box_coder.decode(outputs["box_encodings"], anchors)
            mined = self.hard_example_miner(
                classification_losses, localization_losses, decoded, targets["match"]
            )
            classification_losses *= mined
            localization_losses *= mined
        normalizer = 1.0
        if self.normalize_loss_by_num_matches:
            normalizer = global_normalizer(tf.reduce_sum(targets["reg_weights"]))
        localization_normalizer = normalizer
        if self.normalize_loc_loss_by_codesize:
            localization_normalizer *= self.box_coder.code_size
        return {
            "localization_loss": self.localization_weight
            * tf.reduce_sum(localization_losses)
            / localization_normalizer,
            "classification_loss": self.classification_weight
            * tf.reduce_sum(classification_losses)
            / normalizer,
        }

    def postprocess(self, outputs):
        # As the TF OD API: non-max suppression on the decoded boxes as they are, then the
        # kept ones clipped to the image and those left empty dropped (clipping first changes
        # overlaps, so what NMS keeps).
        boxes, scores = self.decode_boxes_and_scores(outputs)
        return to_label_ids(suppress_then_clip(self.non_max_suppression, boxes, scores))

    def decode_boxes_and_scores(self, outputs):
        """Raw outputs of `call` → what non-max suppression takes (also what TFLite export
        feeds TFLite's NMS).

        Args:
            outputs: the dict `call` returns.

        Returns:
            `(boxes, scores)`: float32 `[B, A, 4]` `rel_yxyx` of the input images, not
            clipped (NMS runs on them as they are and the kept ones are clipped, as in the TF
            OD API), and float32 `[B, A, num_classes]`: the score converter of
            `non_max_suppression` applied to `logits / logit_scale`, then the background
            column (if any) removed.
        """
        boxes = from_padded_frame(
            self.box_coder.decode(outputs["box_encodings"], outputs["anchors"]), outputs["scale"]
        )
        scores = self.non_max_suppression.convert_scores(outputs["class_logits"])
        if self.add_background_class:
            scores = scores[..., 1:]
        return boxes, scores

    def get_config(self):
        return {
            **super().get_config(),
            "classification_weight": self.classification_weight,
            "localization_weight": self.localization_weight,
            "normalize_loss_by_num_matches": self.normalize_loss_by_num_matches,
            "normalize_loc_loss_by_codesize": self.normalize_loc_loss_by_codesize,
            "encode_background_as_zeros": self.encode_background_as_zeros,
            "add_background_class": self.add_background_class,
            "negative_class_weight": self.negative_class_weight,
        }

    @classmethod
    def from_config(cls, config):
        # Configs saved before `non_max_suppression` carry its settings as model arguments.
        config = {"non_max_suppression": None, **config}
        return super().from_config(config)

