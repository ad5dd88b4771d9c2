"""`kdet.SSD`: the single-shot detector meta-architecture of the TF OD API (SSD, RetinaNet)."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import clip_boxes
from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
from kdet.feature_extractors.registry import build_feature_extractor
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.layers.image_resizer import from_padded_frame
from kdet.layers.image_resizer import to_padded_frame
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression
from kdet.layers.ssd_anchor_generator import SSDAnchorGenerator
from kdet.losses.weighted_sigmoid_classification_loss import WeightedSigmoidClassificationLoss
from kdet.losses.weighted_smooth_l1_localization_loss import WeightedSmoothL1LocalizationLoss
from kdet.models.distribution import global_normalizer
from kdet.models.object_detector import ObjectDetector
from kdet.models.object_detector import static_or_dynamic_hw
from kdet.models.object_detector import to_label_ids
from kdet.models.ssd.convolutional_box_predictor import ConvolutionalBoxPredictor
from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.hard_example_miner import HardExampleMiner
from kdet.targets.target_assigner import TargetAssigner

SCORE_CONVERTERS = ("sigmoid", "softmax")



@keras.saving.register_keras_serializable(package="kdet")
class SSD(ObjectDetector):
    """Single Shot MultiBox Detector: one feature pyramid, one box predictor, anchors, NMS.

    Expresses the TF OD API `ssd { … }` config block: the image resizer, the feature
    extractor, the anchor generator, the box predictor, the box coder, the matcher (IoU
    similarity), the classification and localization losses and their weights, hard example
    mining, the score converter and post-processing. Components left as `None` get the
    defaults of the TF OD API `ssd_mobilenet_v2_coco` config, listed below.

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
            class_logits [B, A, num_classes + 1])`, background in column 0. Defaults to
            `ConvolutionalBoxPredictor(num_classes, anchors per location, kernel_size=3)`.
        box_coder: Defaults to `FasterRcnnBoxCoder((10, 10, 5, 5))`.
        matcher: Defaults to `ArgmaxMatcher(0.5, 0.5, force_match_for_each_row=True)`.
        classification_loss: Defaults to `WeightedSigmoidClassificationLoss()`.
        localization_loss: Defaults to `WeightedSmoothL1LocalizationLoss()`.
        hard_example_miner: a `kdet.targets.HardExampleMiner`, or `None` for no mining (use
            it with a focal loss). Defaults to `None`.
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
        score_converter: `"sigmoid"` or `"softmax"`. Defaults to `"sigmoid"`.
        logit_scale: float. Logits are divided by it before the score converter.
            Defaults to `1.0`.
        score_threshold: float. Defaults to `1e-8`.
        iou_threshold: float. NMS IoU threshold. Defaults to `0.6`.
        max_detections_per_class: int. Defaults to `100`.
        max_detections: int. Defaults to `100`.
        bounding_box_format: see `ObjectDetector`. Defaults to `"yxyx"`.

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
        classification_weight=1.0,
        localization_weight=1.0,
        normalize_loss_by_num_matches=True,
        normalize_loc_loss_by_codesize=False,
        encode_background_as_zeros=False,
        score_converter="sigmoid",
        logit_scale=1.0,
        score_threshold=1e-8,
        iou_threshold=0.6,
        max_detections_per_class=100,
        max_detections=100,
        bounding_box_format="yxyx",
        **kwargs,
    ):
        super().__init__(num_classes, bounding_box_format=bounding_box_format, **kwargs)
        if score_converter not in SCORE_CONVERTERS:
            raise ValueError(
                f"score_converter must be one of {SCORE_CONVERTERS}, got {score_converter!r}"
            )
        if isinstance(feature_extractor, str):
            feature_extractor = build_feature_extractor(feature_extractor)
        self.feature_extractor = feature_extractor
        self.image_resizer = image_resizer or FixedShapeResizer(300, 300)
        self.anchor_generator = anchor_generator or SSDAnchorGenerator()
        self.box_predictor = box_predictor or ConvolutionalBoxPredictor(
            num_classes, self.anchor_generator.num_anchors_per_location(), kernel_size=3
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
        self.score_converter = score_converter
        self.logit_scale = logit_scale
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_detections_per_class = max_detections_per_class
        self.max_detections = max_detections
        self._target_assigner = TargetAssigner(self.matcher, self.box_coder)
        self._non_max_suppression = MultiClassNonMaxSuppression(
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_detections_per_class=max_detections_per_class,
            max_detections=max_detections,
        )

    def call(self, images, training=None):
        """Raw images `[B, H, W, 3]` (or resized ones with their true shapes, see
        `ObjectDetector.resize_inputs`) → `{"box_encodings" [B, A, 4], "class_logits"
        [B, A, num_classes + 1], "anchors" [A, 4] rel_yxyx of the resized frame, "scale"
        [B, 2]}` (the fraction of the frame each image's content fills).
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
        depth = self.num_classes + 1
        class_targets = tf.one_hot(targets["cls_targets"], depth)
        if self.encode_background_as_zeros:
            # Only unmatched anchors have a one there.
            class_targets *= tf.one_hot(0, depth, on_value=0.0, off_value=1.0)
        classification_losses = self.classification_loss(
            outputs["class_logits"], class_targets, targets["cls_weights"]
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
        return to_label_ids(self._non_max_suppression(*self.decode_boxes_and_scores(outputs)))

    def decode_boxes_and_scores(self, outputs):
        """Raw outputs of `call` → what non-max suppression takes (also what TFLite export
        feeds TFLite's NMS).

        Returns:
            `(boxes, scores)`: float32 `[B, A, 4]` `rel_yxyx` of the input images, clipped to
            them, and float32 `[B, A, num_classes]`, the score converter applied to
            `logits / logit_scale`, background column removed.
        """
        boxes = self.box_coder.decode(outputs["box_encodings"], outputs["anchors"])
        boxes = clip_boxes(from_padded_frame(boxes, outputs["scale"]))
        logits = tf.cast(outputs["class_logits"], tf.float32) / self.logit_scale
        if self.score_converter == "sigmoid":
            scores = tf.sigmoid(logits)
        else:
            scores = tf.nn.softmax(logits)
        return boxes, scores[..., 1:]

    def get_config(self):
        return {
            **super().get_config(),
            "classification_weight": self.classification_weight,
            "localization_weight": self.localization_weight,
            "normalize_loss_by_num_matches": self.normalize_loss_by_num_matches,
            "normalize_loc_loss_by_codesize": self.normalize_loc_loss_by_codesize,
            "encode_background_as_zeros": self.encode_background_as_zeros,
            "score_converter": self.score_converter,
            "logit_scale": self.logit_scale,
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "max_detections_per_class": self.max_detections_per_class,
            "max_detections": self.max_detections,
        }

