"""`MaskRCNN`: Faster R-CNN with the TF OD API's third stage, instance masks."""

import keras
import tensorflow as tf

from kdet.layers.image_resizer import from_padded_frame
from kdet.layers.image_resizer import to_padded_frame
from kdet.models.distribution import global_normalizer
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn.mask_head import MaskHead
from kdet.models.faster_rcnn.mask_head import class_masks
from kdet.models.faster_rcnn.mask_head import mask_loss
from kdet.models.faster_rcnn.mask_head import mask_targets
from kdet.models.faster_rcnn.mask_head import paste_masks
from kdet.models.object_detector import static_or_dynamic_hw


@keras.saving.register_keras_serializable(package="kdet")
class MaskRCNN(FasterRCNN):
    """Mask R-CNN: `kdet.FasterRCNN` and a mask head, the TF OD API's `number_of_stages: 3`.

    Training predicts a mask for every sampled RoI from its box classifier features (the ones
    the box classifier reads) and adds `mask_loss`: the sigmoid cross-entropy of the mask of
    the RoI's groundtruth class against the matched groundtruth mask cropped by the RoI and
    resized to the mask size (`crop_and_resize`), over the sampled positive RoIs, divided by
    their pixel count (`positives * mask_height * mask_width`, summed over replicas) and
    times `mask_loss_weight`. Inference runs the second stage and its NMS, then crops the
    features again at the detected boxes, predicts their masks, keeps the one of each
    detection's class and pastes its probabilities into the image (the TF OD API's
    `detection_masks` reframed by `reframe_box_masks_to_image_masks`).

    Args:
        num_classes, feature_extractor, image_resizer, region_proposal_network, roi_heads:
            as in `kdet.FasterRCNN`. The extractor's box classifier features must be maps
            `[N, h, w, C]` (not flat FPN box features).
        mask_head: a `kdet.models.faster_rcnn.MaskHead` of `num_classes` (TF OD API
            `mask_rcnn_box_predictor` with `predict_instance_masks`). Defaults to
            `MaskHead(num_classes)`: 15 x 15 masks, two convolutions of 256 channels.
        mask_loss_weight: float. TF OD API `second_stage_mask_prediction_loss_weight`.
            Defaults to `1.0`.
        number_of_stages: must be 3 (kept for configs and `get_config`).
        **kwargs: passed to `kdet.FasterRCNN`.

    Data contract:
        y: as `kdet.FasterRCNN`, with `"masks"` `[batch, num_boxes, H, W]` 0/1 (uint8 or float;
            what `kdet.data.read_tfrecords(load_instance_masks=True)` gives): for raw images,
            covering each image; for the dict of resized images, in the padded resized frame
            (content top-left, as the data layer pads them).
        predictions: as `kdet.FasterRCNN`, with `"masks"` float32 `[batch, max_detections,
            H, W]`, each detection's mask probabilities in the pixels of the given images
            (raw images: their size; resized ones: the padded frame), 0 on padding rows, and
            `"box_masks"` `[batch, max_detections, mask_height, mask_width]`, the same in each
            box's frame (the TF OD API SavedModel's `detection_masks`). The `"masks"`
            take `batch * max_detections * H * W * 4` bytes: 400 MB for 100 detections on one
            1024 x 1024 image; predict large photos one by one, or resized.

    Example:
    ```python
    model = kdet.models.faster_rcnn.MaskRCNN(
        num_classes=3,
        feature_extractor="faster_rcnn_resnet50",
        image_resizer=kdet.layers.FixedShapeResizer(512, 512),
        mask_head=kdet.models.faster_rcnn.MaskHead(3, mask_height=33, mask_width=33),
    )
    model.compile()
    model.fit(images, {"boxes": boxes, "labels": labels, "masks": masks})
    model.predict(images)["masks"]  # [N, 100, H, W] probabilities
    ```

    Reference:
        [He et al., 2017](https://arxiv.org/abs/1703.06870); TF OD API
        `meta_architectures/faster_rcnn_meta_arch.py` (`_predict_third_stage`, the mask loss of
        `_loss_box_classifier`).
    """

    loss_names = FasterRCNN.loss_names + ("mask_loss",)
    extra_groundtruth = ("masks",)
    component_names = FasterRCNN.component_names + ("mask_head",)
    _valid_stages = (3,)

    def __init__(
        self,
        num_classes,
        feature_extractor,
        image_resizer=None,
        region_proposal_network=None,
        roi_heads=None,
        mask_head=None,
        mask_loss_weight=1.0,
        number_of_stages=3,
        **kwargs,
    ):
        super().__init__(
            num_classes,
            feature_extractor,
            image_resizer=image_resizer,
            region_proposal_network=region_proposal_network,
            roi_heads=roi_heads,
            number_of_stages=number_of_stages,
            **kwargs,
        )
        self.mask_head = mask_head or MaskHead(num_classes, name="mask_head")
        if self.mask_head.num_classes != num_classes:
            raise ValueError(
                f"num_classes is {num_classes} but mask_head has num_classes="
                f"{self.mask_head.num_classes}: build it with the same number"
            )
        self.mask_loss_weight = mask_loss_weight

    @property
    def _mask_size(self):
        return (self.mask_head.mask_height, self.mask_head.mask_width)

    def call(self, images, training=None):
        """Raw images → `kdet.FasterRCNN`'s outputs and `"detections"`: the post-processed
        detections (boxes `rel_yxyx` of the images) with `"masks"` float32 `[B, D, H, W]`
        probabilities in the pixels of `images` (raw: their size; a dict of resized images:
        the padded frame) and `"box_masks"` float32 `[B, D, mask_height, mask_width]`, the
        same in each box's frame (the TF OD API's `detection_masks` before reframing), both
        0 on padding rows."""
        first_stage = self._first_stage(images, training)
        outputs = self._stage_outputs(first_stage, training)
        detections = self.roi_heads.postprocess(outputs)
        frame_boxes = to_padded_frame(detections["boxes"], first_stage["scale"])
        box_features = self._box_classifier_features(first_stage, frame_boxes, training)
        logits = self.mask_head(box_features, training=training)
        batch, num_detections = tf.shape(frame_boxes)[0], tf.shape(frame_boxes)[1]
        logits = tf.reshape(logits, [batch, num_detections, *logits.shape[1:]])
        box_masks = tf.sigmoid(class_masks(logits, detections["labels"] - 1))
        if isinstance(images, dict):
            height, width = first_stage["image_size"]
            paste_boxes = frame_boxes
        else:
            height, width = static_or_dynamic_hw(images)
            paste_boxes = detections["boxes"]
        masks = paste_masks(box_masks, paste_boxes, height, width)
        valid = tf.cast(detections["labels"] > 0, tf.float32)[:, :, None, None]
        detections = {**detections, "masks": masks * valid, "box_masks": box_masks * valid}
        return {**outputs, "detections": detections}

    def groundtruth_extras(self, images, y):
        if isinstance(y, dict) and "masks" not in y:
            raise ValueError(
                "MaskRCNN trains on instance masks: y needs 'masks' [batch, num_boxes, H, W] as "
                "well as boxes and labels (kdet.data.read_tfrecords(load_instance_masks=True); "
                "in a pipeline config, load_instance_masks: true in train_input_reader and "
                f"eval_input_reader); got y with keys {sorted(y)}"
            )
        return super().groundtruth_extras(images, y)

    def forward_train(self, images, gt_boxes, gt_labels, training, gt_masks, gt_mask_window):
        outputs = super().forward_train(images, gt_boxes, gt_labels, training)
        logits = self.mask_head(outputs["box_classifier_features"], training=training)
        rois = outputs["rois"]
        logits = tf.reshape(logits, [tf.shape(rois)[0], tf.shape(rois)[1], *logits.shape[1:]])
        return {**outputs, "mask_logits": logits}

    def compute_losses(self, outputs, gt_boxes, gt_labels, gt_masks, gt_mask_window):
        losses = super().compute_losses(outputs, gt_boxes, gt_labels)
        losses["mask_loss"] = self.mask_loss_of(outputs, gt_masks, gt_mask_window)
        return losses

    def mask_loss_of(self, outputs, gt_masks, gt_mask_window):
        """`mask_loss` of the sampled RoIs.

        Args:
            outputs: `forward_train`'s: `"rois"` `[B, S, 4]` rel_yxyx of the padded frame,
                `"scale"` `[B, 2]`, `"roi_matched_gt"`, `"roi_cls_targets"`, `"roi_weights"`
                `[B, S]` and `"mask_logits"` `[B, S, num_masks, mask_height, mask_width]`.
            gt_masks: `[B, N, H, W]` 0/1; gt_mask_window: float32 `[B, 2]` (see
                `ObjectDetector.groundtruth_extras`).

        Returns:
            float32 scalar: `mask_loss_weight` times the sigmoid cross-entropy summed over the
            pixels of the positive RoIs, divided by their pixel count over all replicas.
        """
        # The RoIs in the masks' frame: relative to the content, then to the mask array.
        rois = from_padded_frame(outputs["rois"], outputs["scale"]) * tf.tile(
            gt_mask_window, [1, 2]
        )[:, None, :]
        targets = mask_targets(gt_masks, rois, outputs["roi_matched_gt"], self._mask_size)
        cls_targets = outputs["roi_cls_targets"]
        weights = outputs["roi_weights"] * tf.cast(cls_targets > 0, tf.float32)
        total, pixels = mask_loss(
            class_masks(outputs["mask_logits"], cls_targets - 1), targets, weights
        )
        return self.mask_loss_weight * total / global_normalizer(pixels)

    def postprocess(self, outputs):
        return outputs["detections"]

    def get_config(self):
        return {**super().get_config(), "mask_loss_weight": self.mask_loss_weight}
