"""`kdet.CenterNet`: the anchor-free "objects as points" meta-architecture of the TF OD API."""

import keras
import tensorflow as tf

from kdet.feature_extractors.registry import build_feature_extractor
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer
from kdet.losses.penalty_reduced_logistic_focal_loss import PenaltyReducedLogisticFocalLoss
from kdet.losses.weighted_l1_localization_loss import WeightedL1LocalizationLoss
from kdet.models.center_net import center_net_postprocessing as post
from kdet.models.center_net import center_net_targets as targets
from kdet.models.center_net.center_net_prediction_head import CenterNetPredictionHead
from kdet.models.center_net.deepmac import DeepMACMaskTask
from kdet.models.center_net.keypoint_estimation_task import KeypointEstimationTask
from kdet.models.distribution import global_normalizer
from kdet.models.faster_rcnn.mask_head import mask_targets
from kdet.models.faster_rcnn.mask_head import paste_masks
from kdet.models.object_detector import ObjectDetector
from kdet.models.object_detector import static_or_dynamic_hw

OBJECT_CENTER = "object_center"
BOX_SCALE = "box_scale"
BOX_OFFSET = "box_offset"
# Keypoint heads, named "<task name>/<head>" in the outputs (the TF OD API's names).
KEYPOINT_HEATMAP = "keypoint_heatmap"
KEYPOINT_OFFSET = "keypoint_offset"
KEYPOINT_REGRESSION = "keypoint_regression"
# DeepMAC heads (TF OD API `INSTANCE_EMBEDDING`, `PIXEL_EMBEDDING`).
INSTANCE_EMBEDDING = "instance_embedding"
PIXEL_EMBEDDING = "pixel_embedding"


@keras.saving.register_keras_serializable(package="kdet")
class CenterNet(ObjectDetector):
    """CenterNet: objects as the peaks of a per-class center heatmap, with their box size and
    sub-cell offset read at the peak; optionally keypoints (human pose, …).

    Expresses the TF OD API `center_net { … }` config block: the feature extractor and image
    resizer, `object_center_params` (center heatmap head and loss, peak extraction),
    `object_detection_task` (box size and offset heads and losses) and
    `keypoint_estimation_task`s (`kdet.models.KeypointEstimationTask`). One set of
    heads sits on each feature map of the extractor (Hourglass-104 has two: intermediate
    supervision); the losses average over them, predictions read the last one.

    Training: Gaussian heatmap targets at the floored box centers (radius from
    `min_box_overlap_iou`), the penalty-reduced focal loss per object, L1 losses of the box
    size (in output cells, weighted `scale_loss_weight`) and offset at the center cell, all
    divided by the number of objects of the global batch. Inference: the sigmoid heatmap's
    `max_box_predictions` highest local maxima (`peak_max_pool_kernel_size` max-pool
    suppression, no NMS), each a detection of its channel's class.

    Args:
        num_classes: int. Object classes, background excluded.
        feature_extractor: a `kdet.feature_extractors.CenterNetFeatureExtractor` (or any layer
            with `preprocess`, `out_stride`, `num_feature_outputs` and a `call` returning the
            list of feature maps), or the registered name of one.
        image_resizer: Defaults to `KeepAspectRatioResizer(512, 512, pad_to_max_dimension=True)`
            (the TF OD API CenterNet configs').
        center_loss: heatmap loss. Defaults to `kdet.losses.PenaltyReducedLogisticFocalLoss()`
            (alpha 2, beta 4).
        localization_loss: box size and offset loss. Defaults to
            `kdet.losses.WeightedL1LocalizationLoss()`.
        keypoint_tasks: list of `KeypointEstimationTask`s (distinct names and classes,
            disjoint `keypoint_indices`). Defaults to none.
        mask_task: optional `kdet.models.center_net.DeepMACMaskTask`: DeepMAC instance masks
            (TF OD API `deepmac_mask_estimation`). Defaults to none.
        object_center_loss_weight: float. Defaults to `1.0`.
        heatmap_bias_init: float, initial bias of the center heatmap head. Defaults to `-2.19`.
        min_box_overlap_iou: float, sets the radius of the center Gaussians. Defaults to `0.7`.
        max_box_predictions: int, the detections per image (`max_detections`). Defaults to
            `100`.
        peak_max_pool_kernel_size: int. Defaults to `3`.
        center_head_num_filters, center_head_kernel_sizes: hidden convolutions of the center
            head. Default to `(256,)` and `(3,)`.
        task_loss_weight: float, weight of the box losses. Defaults to `1.0`.
        scale_loss_weight: float. Defaults to `0.1`.
        offset_loss_weight: float. Defaults to `1.0`.
        scale_head_num_filters, scale_head_kernel_sizes, offset_head_num_filters,
            offset_head_kernel_sizes: hidden convolutions of the box heads. Default to
            `(256,)` and `(3,)`.
        use_depthwise: bool, separable hidden convolutions in every head. Defaults to `False`.
        bounding_box_format: see `ObjectDetector`. Defaults to `"yxyx"`.

    Data contract (beyond `ObjectDetector`'s): a model with keypoint tasks trains on
    `y["keypoints"]` float `[batch, num_boxes, num_keypoints, 2]` `(y, x)` in the unit of the
    boxes and `y["keypoint_visibilities"]` `[batch, num_boxes, num_keypoints]` (0: not
    labelled; optional, then every finite keypoint counts), and predicts `"keypoints"`
    `[batch, max_detections, num_keypoints, 2]` (same unit; -1 where a detection has no
    keypoint of that column) and `"keypoint_scores"` `[batch, max_detections,
    num_keypoints]`. A model with a `mask_task` trains on `y["masks"]` `[batch, num_boxes,
    H, W]` 0/1 (as `kdet.MaskRCNN`) and predicts `"masks"` float32 `[batch, max_detections,
    H, W]` (probabilities in the pixels of the given images) and `"box_masks"` `[batch,
    max_detections, mask_size, mask_size]` (in each box's frame).

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("mobilenet_v2_fpn")
    model = kdet.CenterNet(num_classes=3, feature_extractor=extractor,
                           image_resizer=kdet.layers.FixedShapeResizer(256, 256))
    model.compile()
    model.fit(images, {"boxes": boxes, "labels": labels}, epochs=1)
    detections = model.predict(images)   # {"boxes", "labels", "confidences", "num_detections"}
    ```

    Reference:
        [Zhou et al., 2019, Objects as Points](https://arxiv.org/abs/1904.07850); TF OD API
        `meta_architectures/center_net_meta_arch.py`.
    """

    component_names = (
        "feature_extractor",
        "image_resizer",
        "center_loss",
        "localization_loss",
    )

    def __init__(
        self,
        num_classes,
        feature_extractor,
        image_resizer=None,
        center_loss=None,
        localization_loss=None,
        keypoint_tasks=(),
        mask_task=None,
        object_center_loss_weight=1.0,
        heatmap_bias_init=-2.19,
        min_box_overlap_iou=0.7,
        max_box_predictions=100,
        peak_max_pool_kernel_size=3,
        center_head_num_filters=(256,),
        center_head_kernel_sizes=(3,),
        task_loss_weight=1.0,
        scale_loss_weight=0.1,
        offset_loss_weight=1.0,
        scale_head_num_filters=(256,),
        scale_head_kernel_sizes=(3,),
        offset_head_num_filters=(256,),
        offset_head_kernel_sizes=(3,),
        use_depthwise=False,
        bounding_box_format="yxyx",
        **kwargs,
    ):
        super().__init__(num_classes, bounding_box_format=bounding_box_format, **kwargs)
        if isinstance(feature_extractor, str):
            feature_extractor = build_feature_extractor(feature_extractor)
        self.feature_extractor = feature_extractor
        self.image_resizer = image_resizer or KeepAspectRatioResizer(
            512, 512, pad_to_max_dimension=True
        )
        self.center_loss = center_loss or PenaltyReducedLogisticFocalLoss()
        self.localization_loss = localization_loss or WeightedL1LocalizationLoss()
        self.keypoint_tasks = _keypoint_tasks(keypoint_tasks)
        if isinstance(mask_task, dict):
            mask_task = keras.saving.deserialize_keras_object(mask_task)
        if mask_task is not None and not isinstance(mask_task, DeepMACMaskTask):
            raise TypeError(
                f"mask_task must be a kdet.models.center_net.DeepMACMaskTask; got {type(mask_task).__name__}"
            )
        self.mask_task = mask_task
        self.object_center_loss_weight = object_center_loss_weight
        self.heatmap_bias_init = heatmap_bias_init
        self.min_box_overlap_iou = min_box_overlap_iou
        self.max_box_predictions = int(max_box_predictions)
        self.peak_max_pool_kernel_size = int(peak_max_pool_kernel_size)
        self.center_head_num_filters = list(center_head_num_filters)
        self.center_head_kernel_sizes = list(center_head_kernel_sizes)
        self.task_loss_weight = task_loss_weight
        self.scale_loss_weight = scale_loss_weight
        self.offset_loss_weight = offset_loss_weight
        self.scale_head_num_filters = list(scale_head_num_filters)
        self.scale_head_kernel_sizes = list(scale_head_kernel_sizes)
        self.offset_head_num_filters = list(offset_head_num_filters)
        self.offset_head_kernel_sizes = list(offset_head_kernel_sizes)
        self.use_depthwise = bool(use_depthwise)
        self.prediction_heads = self._make_prediction_heads()
        self.mask_network = mask_task.make_mask_network() if mask_task else None
        # The loss names depend on the tasks: the base made trackers for none.
        self.loss_names = ("object_center_loss", "box_scale_loss", "box_offset_loss") + tuple(
            task.loss_name(head)
            for task in self.keypoint_tasks
            for head in ("heatmap", "offset", "regression")
        ) + ((DeepMACMaskTask.loss_name,) if mask_task else ())
        self._loss_trackers = [keras.metrics.Mean(name=name) for name in self.loss_names]

    @property
    def extra_groundtruth(self):
        """`("keypoints",)` with keypoint tasks, `("masks",)` with a mask task: `fit` then
        needs `y["keypoints"]`, `y["masks"]`."""
        return (("keypoints",) if self.keypoint_tasks else ()) + (
            ("masks",) if self.mask_task else ()
        )

    @property
    def num_keypoints(self):
        """Columns of the `"keypoints"` the model takes and predicts (0 without tasks)."""
        return max((max(task.keypoint_indices) + 1 for task in self.keypoint_tasks), default=0)

    @property
    def max_detections(self):
        """Detections per image of `postprocess` (`max_box_predictions`)."""
        return self.max_box_predictions

    def _make_prediction_heads(self):
        """`{output name: [one CenterNetPredictionHead per feature map]}`."""
        specs = {
            OBJECT_CENTER: (self.num_classes, self.center_head_num_filters,
                            self.center_head_kernel_sizes, self.heatmap_bias_init),
            BOX_SCALE: (2, self.scale_head_num_filters, self.scale_head_kernel_sizes, None),
            BOX_OFFSET: (2, self.offset_head_num_filters, self.offset_head_kernel_sizes, None),
        }
        for task in self.keypoint_tasks:
            count = task.num_keypoints
            specs[f"{task.task_name}/{KEYPOINT_HEATMAP}"] = (
                count, task.heatmap_head_num_filters, task.heatmap_head_kernel_sizes,
                task.heatmap_bias_init,
            )
            specs[f"{task.task_name}/{KEYPOINT_REGRESSION}"] = (
                2 * count, task.regress_head_num_filters, task.regress_head_kernel_sizes, None,
            )
            specs[f"{task.task_name}/{KEYPOINT_OFFSET}"] = (
                2 * count if task.per_keypoint_offset else 2, task.offset_head_num_filters,
                task.offset_head_kernel_sizes, None,
            )
        depthwise = dict.fromkeys(specs, self.use_depthwise)
        if self.mask_task:
            # The TF OD API makes the embedding heads without `use_depthwise`.
            task = self.mask_task
            for name, channels in ((INSTANCE_EMBEDDING, task.dim),
                                   (PIXEL_EMBEDDING, task.pixel_embedding_dim)):
                specs[name] = (channels, task.embedding_head_num_filters,
                               task.embedding_head_kernel_sizes, None)
                depthwise[name] = False
        return {
            name: [
                CenterNetPredictionHead(
                    outputs, filters, kernels, bias_init=bias, use_depthwise=depthwise[name],
                    name=f"{name.replace('/', '_')}_{index}",
                )
                for index in range(self.feature_extractor.num_feature_outputs)
            ]
            for name, (outputs, filters, kernels, bias) in specs.items()
        }

    # -- forward ------------------------------------------------------------------------------

    def call(self, images, training=None):
        """Raw images `[B, H, W, 3]` (or resized ones with their true shapes, see
        `ObjectDetector.resize_inputs`) → `{name: [one float [B, H/4, W/4, c] map per feature
        output]}` for `"object_center"` (logits, c = num_classes), `"box_scale"` and
        `"box_offset"` (c = 2), and per keypoint task `"<task>/keypoint_heatmap"` (logits),
        `"<task>/keypoint_offset"`, `"<task>/keypoint_regression"`; plus `"scale"` float32
        `[B, 2]` (the fraction of the frame each image's content fills) and `"input_size"`
        float32 `[2]` (the resized frame's height and width).
        """
        resized, scale = self.resize_inputs(images)
        features = self.feature_extractor(
            self.feature_extractor.preprocess(resized), training=training
        )
        outputs = {
            name: [head(feature) for head, feature in zip(heads, features)]
            for name, heads in self.prediction_heads.items()
        }
        outputs["scale"] = scale
        outputs["input_size"] = tf.cast(tf.shape(resized)[1:3], tf.float32)
        if self.mask_task:
            # Where predicted masks are pasted: raw images, or the frame of resized ones.
            raw = not isinstance(images, dict)
            outputs["image_size"] = tf.shape(images if raw else resized)[1:3]
            outputs["paste_scale"] = tf.ones_like(scale) if raw else scale
        return outputs

    def forward_train(self, images, gt_boxes, gt_labels, training, **groundtruth):
        outputs = self(images, training=training)
        if self.mask_task:
            outputs["gt_mask_logits"] = self._groundtruth_mask_logits(
                outputs, gt_boxes, gt_labels, training
            )
            outputs["gt_mask_target_boxes"] = self.mask_task.target_boxes(gt_boxes, training)
        return outputs

    def _mask_maps(self, outputs):
        """The `(pixel, instance)` embedding pairs masks train on (the last only with
        `use_only_last_stage`)."""
        pairs = list(zip(outputs[PIXEL_EMBEDDING], outputs[INSTANCE_EMBEDDING]))
        return pairs[-1:] if self.mask_task.use_only_last_stage else pairs

    def _groundtruth_mask_logits(self, outputs, gt_boxes, gt_labels, training):
        """Mask logits `[M, S, S]` of the real ground-truth rows (see `_mask_rows`), one per
        trained feature map."""
        frame_boxes = gt_boxes * tf.tile(outputs["scale"], [1, 2])[:, None, :]
        rows = _mask_rows(gt_labels)
        return [
            self.mask_task.mask_logits(self.mask_network, pixel, instance, frame_boxes, rows,
                                       training=training)
            for pixel, instance in self._mask_maps(outputs)
        ]

    # -- losses -------------------------------------------------------------------------------

    def compute_losses(self, outputs, gt_boxes, gt_labels, gt_keypoints=None,
                       gt_keypoint_visibilities=None, gt_masks=None, gt_mask_window=None):
        frame = _OutputFrame(self, outputs)
        real = gt_labels > 0
        boxes = tf.where(real[..., None], frame.absolute(gt_boxes), 0.0)
        labels = tf.where(real, gt_labels, -1)
        num_boxes = global_normalizer(tf.reduce_sum(tf.cast(real, tf.float32)))
        heatmap = targets.center_heatmap_targets(
            boxes, labels, self.num_classes, frame.height, frame.width, self.min_box_overlap_iou
        )
        center_loss = self._heatmap_loss(
            self.center_loss, outputs[OBJECT_CENTER], heatmap, frame.pixel_weights, num_boxes
        )
        indices, sizes, offsets = targets.box_size_and_offset_targets(
            boxes, frame.height, frame.width
        )
        weights = tf.cast(real, tf.float32)
        losses = {
            "object_center_loss": self.object_center_loss_weight * center_loss,
            "box_scale_loss": self.task_loss_weight * self.scale_loss_weight
            * self._gathered_loss(self.localization_loss, outputs[BOX_SCALE], indices, sizes,
                                  weights, num_boxes),
            "box_offset_loss": self.task_loss_weight * self.offset_loss_weight
            * self._gathered_loss(self.localization_loss, outputs[BOX_OFFSET], indices, offsets,
                                  weights, num_boxes),
        }
        for task in self.keypoint_tasks:
            losses.update(self._keypoint_losses(
                task, outputs, frame, boxes, real, labels, gt_keypoints, gt_keypoint_visibilities
            ))
        if self.mask_task:
            losses[DeepMACMaskTask.loss_name] = self._mask_loss(
                outputs["gt_mask_logits"], outputs["gt_mask_target_boxes"], gt_labels, gt_masks,
                gt_mask_window,
            )
        return losses

    def _mask_loss(self, mask_logits, gt_boxes, gt_labels, gt_masks, gt_mask_window):
        """The DeepMAC mask loss: each map's per-instance losses over the allowed objects of
        the global batch, averaged over the maps, times `task_loss_weight`; `gt_boxes` crop
        the targets from `gt_masks`."""
        task = self.mask_task
        # The boxes in the masks' frame: relative to the content, then to the mask array.
        mask_boxes = gt_boxes * tf.tile(gt_mask_window, [1, 2])[:, None, :]
        num_boxes = tf.shape(gt_boxes)[1]
        matched = tf.broadcast_to(tf.range(num_boxes)[None], tf.shape(gt_labels))
        size = (task.mask_size, task.mask_size)
        rows = _mask_rows(gt_labels)
        targets = tf.gather(
            tf.reshape(mask_targets(gt_masks, mask_boxes, matched, size), [-1, *size]), rows
        )
        weights = tf.gather(tf.reshape(task.loss_weights(gt_labels), [-1]), rows)
        normalizer = global_normalizer(tf.reduce_sum(weights))
        total = tf.add_n([
            tf.reduce_sum(task.instance_losses(logits, targets) * weights)
            for logits in mask_logits
        ])
        return task.task_loss_weight * total / (len(mask_logits) * normalizer)

    def _keypoint_losses(self, task, outputs, frame, boxes, real, labels, keypoints,
                         visibilities):
        """The three weighted losses of one keypoint task."""
        keypoints, weights = targets.task_keypoints(
            keypoints, visibilities, labels, task.class_id, task.keypoint_indices
        )
        keypoints = frame.absolute(keypoints)
        heatmap, valid = targets.keypoint_heatmap_targets(
            keypoints, weights, boxes, real, task.keypoint_std_dev, frame.height, frame.width
        )
        num_keypoints = global_normalizer(tf.reduce_sum(weights))
        heatmap_loss = self._heatmap_loss(
            task.heatmap_loss, outputs[f"{task.task_name}/{KEYPOINT_HEATMAP}"], heatmap,
            frame.pixel_weights[..., None] * _flatten_cells(valid), num_keypoints,
        )
        indices, offsets, offset_weights = targets.keypoint_offset_targets(
            keypoints, weights, task.offset_peak_radius, frame.height, frame.width
        )
        offset_predictions = outputs[f"{task.task_name}/{KEYPOINT_OFFSET}"]
        if task.per_keypoint_offset:
            offset_predictions = [_per_keypoint(p, task.num_keypoints) for p in offset_predictions]
        else:
            indices = indices[..., :2]
        offset_loss = self._gathered_loss(
            task.localization_loss, offset_predictions, indices, offsets, offset_weights,
            global_normalizer(tf.reduce_sum(offset_weights)),
        )
        indices, regressions, regression_weights = targets.keypoint_regression_targets(
            keypoints, weights, boxes, task.offset_peak_radius, frame.height, frame.width
        )
        regression_predictions = [
            _per_keypoint(p, task.num_keypoints)
            for p in outputs[f"{task.task_name}/{KEYPOINT_REGRESSION}"]
        ]
        regression_loss = self._gathered_loss(
            task.localization_loss, regression_predictions, indices, regressions,
            regression_weights, global_normalizer(tf.reduce_sum(regression_weights)),
        )
        weight = task.task_loss_weight
        return {
            task.loss_name("heatmap"): weight * task.keypoint_heatmap_loss_weight * heatmap_loss,
            task.loss_name("offset"): weight * task.keypoint_offset_loss_weight * offset_loss,
            task.loss_name("regression"): weight * task.keypoint_regression_loss_weight
            * regression_loss,
        }

    @staticmethod
    def _heatmap_loss(loss, predictions, heatmap, pixel_weights, normalizer):
        """`loss` of each map of `predictions` against `heatmap`, summed, over the maps and
        `normalizer`."""
        flat_targets = _flatten_cells(heatmap)
        total = tf.add_n([
            tf.reduce_sum(loss(_flatten_cells(prediction), flat_targets, pixel_weights))
            for prediction in predictions
        ])
        return total / (len(predictions) * normalizer)

    @staticmethod
    def _gathered_loss(loss, predictions, indices, values, weights, normalizer):
        """`loss` of each map of `predictions` read at `indices` against `values`, summed, over
        the maps and `normalizer`."""
        size = values.shape[-1]
        flat_values = tf.reshape(values, [tf.shape(values)[0], -1, size])
        flat_weights = tf.reshape(weights, [tf.shape(weights)[0], -1])
        total = tf.add_n([
            tf.reduce_sum(loss(
                tf.reshape(targets.gather_at(prediction, indices), tf.shape(flat_values)),
                flat_values,
                flat_weights,
            ))
            for prediction in predictions
        ])
        return total / (len(predictions) * normalizer)

    # -- inference ----------------------------------------------------------------------------

    def postprocess(self, outputs):
        """Heatmap peaks → the predictions dict (boxes `rel_yxyx` of the input images), with
        `"keypoints"` (`rel` `(y, x)`, -1 where none) and `"keypoint_scores"` for a model with
        keypoint tasks (and `"masks"`, `"box_masks"` with a mask task)."""
        # Head outputs in float32 (a mixed-precision policy makes them bfloat16 or float16).
        outputs = {
            name: [tf.cast(value, tf.float32) for value in values]
            if isinstance(values, list) else values
            for name, values in outputs.items()
        }
        frame = _OutputFrame(self, outputs)
        centers = tf.sigmoid(outputs[OBJECT_CENTER][-1]) * frame.content_cells[..., None]
        scores, y, x, classes = post.top_k_peaks(
            centers, self.peak_max_pool_kernel_size, self.max_box_predictions
        )
        detected = scores > 0.0
        strided_boxes = post.boxes_at_peaks(
            y, x, outputs[BOX_SCALE][-1], outputs[BOX_OFFSET][-1], frame.height, frame.width
        )
        boxes = tf.clip_by_value(frame.relative(strided_boxes), 0.0, 1.0)
        labels = tf.where(detected, classes + 1, -1)
        detections = {
            "boxes": tf.where(detected[..., None], boxes, -1.0),
            "labels": labels,
            "confidences": tf.where(detected, scores, 0.0),
            "num_detections": tf.reduce_sum(tf.cast(detected, tf.int32), axis=1),
        }
        if self.keypoint_tasks:
            detections.update(self._keypoints(outputs, frame, y, x, strided_boxes, labels))
        if self.mask_task:
            detections.update(self._masks(outputs, frame, strided_boxes, detections))
        return detections

    def _masks(self, outputs, frame, strided_boxes, detections):
        """`{"box_masks": [B, D, S, S], "masks": [B, D, H, W]}` probabilities of the
        detections (0 on padding rows), from the last feature map."""
        frame_boxes = strided_boxes / tf.cast(
            tf.stack([frame.height, frame.width, frame.height, frame.width]), tf.float32
        )
        logits = self.mask_task.mask_logits(
            self.mask_network, outputs[PIXEL_EMBEDDING][-1], outputs[INSTANCE_EMBEDDING][-1],
            frame_boxes, training=False,
        )
        valid = tf.cast(detections["labels"] > 0, tf.float32)[:, :, None, None]
        box_masks = tf.sigmoid(logits) * valid
        paste_boxes = detections["boxes"] * tf.tile(outputs["paste_scale"], [1, 2])[:, None, :]
        height, width = tf.unstack(outputs["image_size"])
        return {"box_masks": box_masks,
                "masks": paste_masks(box_masks, paste_boxes, height, width) * valid}

    def _keypoints(self, outputs, frame, y, x, strided_boxes, labels):
        """`{"keypoints": [B, D, num_keypoints, 2] rel (y, x), "keypoint_scores": [B, D,
        num_keypoints]}`, -1 and 0 for detections of other classes and padding."""
        columns = [None] * self.num_keypoints
        for task in self.keypoint_tasks:
            name = task.task_name
            candidates, candidate_scores, num_candidates = post.keypoint_candidates(
                tf.sigmoid(outputs[f"{name}/{KEYPOINT_HEATMAP}"][-1]),
                outputs[f"{name}/{KEYPOINT_OFFSET}"][-1],
                task.keypoint_candidate_score_threshold,
                task.peak_max_pool_kernel_size,
                task.num_candidates_per_keypoint,
            )
            keypoints, scores = post.refine_keypoints(
                post.regressed_keypoints(
                    outputs[f"{name}/{KEYPOINT_REGRESSION}"][-1], y, x, task.num_keypoints
                ),
                candidates, candidate_scores, num_candidates, strided_boxes,
                unmatched_keypoint_score=task.unmatched_keypoint_score,
                box_scale=task.box_scale,
                candidate_search_scale=task.candidate_search_scale,
                candidate_ranking_mode=task.candidate_ranking_mode,
                score_distance_offset=task.score_distance_offset,
                score_threshold=task.keypoint_candidate_score_threshold,
                score_distance_multiplier=task.score_distance_multiplier,
                std_devs=[s * task.std_dev_multiplier for s in task.keypoint_std_dev],
            )
            keypoints = frame.relative(keypoints)
            if task.clip_out_of_frame_keypoints:
                inside = tf.reduce_all((keypoints >= 0.0) & (keypoints <= 1.0), axis=-1)
                keypoints = tf.clip_by_value(keypoints, 0.0, 1.0)
                scores = tf.where(inside, scores, 0.0)
            has_task = tf.equal(labels, task.class_id)[..., None]
            keypoints = tf.where(has_task[..., None], keypoints, -1.0)
            scores = tf.where(has_task, scores, 0.0)
            for column, index in enumerate(task.keypoint_indices):
                columns[index] = (keypoints[:, :, column], scores[:, :, column])
        missing = (-tf.ones_like(labels[..., None], tf.float32) * tf.ones([2]),
                   tf.zeros_like(labels, tf.float32))
        columns = [column or missing for column in columns]
        return {
            "keypoints": tf.stack([points for points, _ in columns], axis=2),
            "keypoint_scores": tf.stack([scores for _, scores in columns], axis=2),
        }

    # -- serialization ------------------------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "keypoint_tasks": [
                keras.saving.serialize_keras_object(task) for task in self.keypoint_tasks
            ],
            "mask_task": keras.saving.serialize_keras_object(self.mask_task)
            if self.mask_task else None,
            **{
                name: getattr(self, name)
                for name in (
                    "object_center_loss_weight", "heatmap_bias_init", "min_box_overlap_iou",
                    "max_box_predictions", "peak_max_pool_kernel_size",
                    "center_head_num_filters", "center_head_kernel_sizes", "task_loss_weight",
                    "scale_loss_weight", "offset_loss_weight", "scale_head_num_filters",
                    "scale_head_kernel_sizes", "offset_head_num_filters",
                    "offset_head_kernel_sizes", "use_depthwise",
                )
            },
        }


class _OutputFrame:
    """The output map of a forward pass and its conversions to and from relative boxes.

    `height`, `width`: the map's size; `pixel_weights` float32 `[B, H * W]` and
    `content_cells` float32 `[B, H, W]`: 1 on the cells of each image's content (TF OD API
    `get_valid_anchor_weights_in_flattened_image`).
    """

    def __init__(self, model, outputs):
        self.height, self.width = static_or_dynamic_hw(outputs[OBJECT_CENTER][-1])
        self.stride = model.feature_extractor.out_stride
        self.scale = outputs["scale"]
        self.true_image_shape = outputs["scale"] * outputs["input_size"]  # [B, 2] pixels
        self.content_cells = targets.valid_output_mask(
            self.true_image_shape, self.stride, self.height, self.width
        )
        self.pixel_weights = _flatten_cells(self.content_cells[..., None])[..., 0]

    def absolute(self, values):
        """Relative `(y, x, …)` `[B, ..., 2n]` of each image's content → output cells."""
        scale = tf.tile(self.scale, [1, values.shape[-1] // 2])
        scale = tf.reshape(scale, [-1] + [1] * (values.shape.rank - 2) + [values.shape[-1]])
        return targets.to_output_frame(values * scale, self.height, self.width)

    def relative(self, values):
        """Output cells `(y, x, …)` `[B, ..., 2n]` → relative to each image's content."""
        size = tf.tile(self.true_image_shape, [1, values.shape[-1] // 2])
        size = tf.reshape(size, [-1] + [1] * (values.shape.rank - 2) + [values.shape[-1]])
        return values * float(self.stride) / size


def _flatten_cells(maps):
    """`[B, H, W, C]` → `[B, H * W, C]`."""
    shape = tf.shape(maps)
    return tf.reshape(maps, [shape[0], -1, shape[3]])


def _mask_rows(labels):
    """int32 `[M]`: the real rows (label > 0) of the flattened `[B * N]` ground truth, or row
    0 (weighted 0) when there are none, so that the mask network never sees an empty batch."""
    rows = tf.cast(tf.where(tf.reshape(labels, [-1]) > 0)[:, 0], tf.int32)
    return tf.cond(tf.size(rows) > 0, lambda: rows, lambda: tf.zeros([1], tf.int32))


def _per_keypoint(predictions, num_keypoints):
    """`[B, H, W, 2 * K]` → `[B, H, W, K, 2]`."""
    shape = tf.shape(predictions)
    return tf.reshape(predictions, tf.concat([shape[:3], [num_keypoints, 2]], axis=0))


def _keypoint_tasks(tasks):
    """The `keypoint_tasks` argument as a list of `KeypointEstimationTask`s, checked."""
    tasks = [
        keras.saving.deserialize_keras_object(task) if isinstance(task, dict) else task
        for task in tasks or ()
    ]
    for task in tasks:
        if not isinstance(task, KeypointEstimationTask):
            raise TypeError(
                "keypoint_tasks must be kdet.models.KeypointEstimationTask objects; "
                f"got {type(task).__name__}"
            )
    for attribute in ("task_name", "class_id"):
        values = [getattr(task, attribute) for task in tasks]
        if len(set(values)) != len(values):
            raise ValueError(f"keypoint_tasks must have distinct {attribute}s; got {values}")
    indices = [index for task in tasks for index in task.keypoint_indices]
    if len(set(indices)) != len(indices):
        raise ValueError(
            f"keypoint_tasks use a keypoint index more than once: {sorted(indices)}"
        )
    return tasks
