"""`kdet.FasterRCNN`: the two-stage meta-architecture of the TF OD API (and its FPN variant)."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import clip_boxes
from kdet.feature_extractors.registry import build_feature_extractor
from kdet.layers.crop_and_resize_roi_pooler import CropAndResizeRoIPooler
from kdet.layers.image_resizer import from_padded_frame
from kdet.layers.image_resizer import to_padded_frame
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer
from kdet.layers.multi_level_roi_align import MultiLevelRoIAlign
from kdet.layers.multiscale_grid_anchor_generator import MultiscaleGridAnchorGenerator
from kdet.layers.proposal_generator import ProposalGenerator
from kdet.models.faster_rcnn import older_arguments
from kdet.models.faster_rcnn.region_proposal_network import RegionProposalNetwork
from kdet.models.faster_rcnn.region_proposal_network import default_anchor_generator
from kdet.models.faster_rcnn.roi_heads import RoIHeads
from kdet.models.faster_rcnn.rpn_head import RPNHead
from kdet.models.object_detector import ObjectDetector
from kdet.models.object_detector import static_or_dynamic_hw

# The largest FPN level RoIs are cropped from (higher levels only feed the RPN, as in FPN).
_MAX_ROI_LEVEL = 5


def default_roi_cropper(
    feature_extractor,
    crop_size=14,
    maxpool_kernel_size=2,
    maxpool_stride=2,
    roi_align_crop_size=None,
    tf_od_api_fpn=False,
):
    """The RoI cropper that suits `feature_extractor` (TF OD API `initial_crop_size`,
    `maxpool_kernel_size`, `maxpool_stride`).

    Args:
        feature_extractor: a `kdet.feature_extractors.FasterRCNNFeatureExtractor`.
        crop_size, maxpool_kernel_size, maxpool_stride: ints, the crop-and-resize size and
            the max-pool after it. Default to `14`, `2`, `2`.
        roi_align_crop_size: int or None. The RoIAlign size of FPN extractors; `None`: the
            pooled size `(crop_size - maxpool_kernel_size) // maxpool_stride + 1` (7).
        tf_od_api_fpn: bool. FPN extractors crop as the TF OD API does (models built from
            its configs): from every level `fpn_min_level..fpn_max_level`, a RoI of 224
            pixels on the second coarsest (`fpn_max_level - 1`), `crop_size` samples on the
            RoI's edges (`align_corners`, one per cell), then the max pool. Defaults to
            `False`.

    Returns:
        `kdet.layers.CropAndResizeRoIPooler(crop_size, maxpool_kernel_size, maxpool_stride)`;
        for FPN extractors (`is_fpn`) `kdet.layers.MultiLevelRoIAlign(fpn_min_level,
        min(fpn_max_level, 5), roi_align_crop_size)`: RoIAlign straight at the pooled size,
        from the levels up to 5 (higher levels only feed the RPN, as in FPN).
    """
    if not feature_extractor.is_fpn:
        return CropAndResizeRoIPooler(crop_size, maxpool_kernel_size, maxpool_stride)
    if tf_od_api_fpn:
        return MultiLevelRoIAlign(
            feature_extractor.fpn_min_level,
            feature_extractor.fpn_max_level,
            crop_size=crop_size,
            canonical_level=feature_extractor.fpn_max_level - 1,
            sampling_ratio=1,
            align_corners=True,
            maxpool_kernel_size=maxpool_kernel_size,
            maxpool_stride=maxpool_stride,
        )
    if roi_align_crop_size is None:
        roi_align_crop_size = (crop_size - maxpool_kernel_size) // maxpool_stride + 1
    return MultiLevelRoIAlign(
        feature_extractor.fpn_min_level,
        min(feature_extractor.fpn_max_level, _MAX_ROI_LEVEL),
        crop_size=roi_align_crop_size,
    )


@keras.saving.register_keras_serializable(package="kdet")
class FasterRCNN(ObjectDetector):
    """Faster R-CNN: a region proposal network, then a box classifier on cropped proposals.

    Expresses the TF OD API `faster_rcnn { … }` config block as four components: the image
    resizer, the feature extractor, the `RegionProposalNetwork` (`first_stage_*` fields) and
    the `RoIHeads` (`second_stage_*` fields, the crop sizes). One training step runs ONE
    forward pass: resize → features → RPN → proposals (no gradient through them) →
    groundtruth-aware sampling of `roi_heads.batch_size` RoIs per image → crops → the
    extractor's box classifier features → box classifier. Inference classifies the
    proposals and runs the second-stage NMS.

    Losses (each divided by a count summed over all replicas): `rpn_objectness_loss`,
    `rpn_box_loss` (normalized by the sampled anchors), `box_classifier_class_loss`,
    `box_classifier_box_loss` (normalized by the sampled RoIs).

    Args:
        num_classes: int. Object classes, background excluded.
        feature_extractor: a `kdet.feature_extractors.FasterRCNNFeatureExtractor` or the
            registered name of one (`"faster_rcnn_resnet50"`, `"faster_rcnn_resnet50_fpn"`,
            `"faster_rcnn_mobilenet_v2"`, …).
        image_resizer: Defaults to `KeepAspectRatioResizer(600, 1024,
            pad_to_max_dimension=True)`.
        region_proposal_network: a `kdet.models.faster_rcnn.RegionProposalNetwork`. Defaults
            to one with the extractor's anchors: `default_anchor_generator(
            first_stage_features_stride)` (scales 0.25..2, aspect ratios 0.5, 1, 2), or for
            FPN extractors (`is_fpn`) `MultiscaleGridAnchorGenerator(fpn_min_level,
            fpn_max_level, anchor_scale=8, aspect_ratios=(0.5, 1, 2), scales_per_octave=1)`.
        roi_heads: a `kdet.models.faster_rcnn.RoIHeads` of `num_classes`. Defaults to one
            whose cropper suits the extractor: `CropAndResizeRoIPooler(14, 2, 2)`, or for
            FPN extractors `MultiLevelRoIAlign(fpn_min_level, min(fpn_max_level, 5),
            crop_size=7)`.
        number_of_stages: 2 (the full model) or 1: the region proposal network alone, as
            the TF OD API builds it for `number_of_stages: 1`. Its detections are the
            proposals (label id 1, confidence the object probability), training runs the RPN
            losses only (the box classifier losses are 0) and `roi_heads` is never built.
            Defaults to `2`.
        bounding_box_format: see `ObjectDetector`. Defaults to `"yxyx"`.
        **kwargs: passed to `ObjectDetector`; and the arguments `FasterRCNN` took before its
            stages were components (`first_stage_max_proposals`, `initial_crop_size`,
            `second_stage_batch_size`, …, `score_threshold`; each TF OD API field name):
            each configures the default component it belongs to, so it cannot be combined
            with `region_proposal_network` / `roi_heads` (docs/faster_rcnn.md lists where
            each goes).

    Example:
    ```python
    model = kdet.FasterRCNN(
        num_classes=3,
        feature_extractor="faster_rcnn_mobilenet_v2",
        image_resizer=kdet.layers.FixedShapeResizer(128, 128),
        roi_heads=kdet.models.faster_rcnn.RoIHeads(
            3, kdet.layers.CropAndResizeRoIPooler(14), batch_size=32
        ),
    )
    model.compile()
    model.fit(images, {"boxes": boxes, "labels": labels})
    detections = model.predict(images)
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497); TF OD API
        `meta_architectures/faster_rcnn_meta_arch.py`.
    """

    loss_names = RegionProposalNetwork.loss_names + RoIHeads.loss_names
    # `number_of_stages` values this class builds (MaskRCNN: 3).
    _valid_stages = (1, 2)
    component_names = ("feature_extractor", "image_resizer", "region_proposal_network", "roi_heads")

    def __init__(
        self,
        num_classes,
        feature_extractor,
        image_resizer=None,
        region_proposal_network=None,
        roi_heads=None,
        number_of_stages=2,
        bounding_box_format="yxyx",
        **kwargs,
    ):
        older = older_arguments.pop_older_arguments(kwargs)
        super().__init__(num_classes, bounding_box_format=bounding_box_format, **kwargs)
        if number_of_stages not in self._valid_stages:
            raise ValueError(
                f"{type(self).__name__}: number_of_stages must be "
                f"{' or '.join(map(str, self._valid_stages))}; got {number_of_stages} (1: the "
                "region proposal network alone, 2: Faster R-CNN, 3: with instance masks, "
                "kdet.models.faster_rcnn.MaskRCNN)"
            )
        for stage, given in (
            ("region_proposal_network", region_proposal_network),
            ("roi_heads", roi_heads),
        ):
            conflicting = older_arguments.older_names(older, stage)
            if given is not None and conflicting:
                raise ValueError(
                    f"{stage} is given: configure it there, not with the older FasterRCNN "
                    f"arguments of its components ({', '.join(conflicting)})"
                )
        self.number_of_stages = number_of_stages
        if isinstance(feature_extractor, str):
            feature_extractor = build_feature_extractor(feature_extractor)
        self.feature_extractor = feature_extractor
        self.image_resizer = image_resizer or KeepAspectRatioResizer(
            600, 1024, pad_to_max_dimension=True
        )
        # The box classifier is built before the RPN head: seeded models keep the initial
        # weights they had when FasterRCNN built both itself, in this order.
        self.roi_heads = roi_heads or self._default_roi_heads(older)
        if self.roi_heads.num_classes != num_classes:
            raise ValueError(
                f"num_classes is {num_classes} but roi_heads has num_classes="
                f"{self.roi_heads.num_classes}: build it with the same number"
            )
        self.region_proposal_network = region_proposal_network or self._default_rpn(older)

    def _default_rpn(self, older):
        """The default `RegionProposalNetwork`, with the older arguments given."""
        arguments = dict(older.get("region_proposal_network", {}))
        arguments.setdefault("anchor_generator", self._default_anchor_generator())
        if "rpn_head" in older:
            num_anchors = arguments["anchor_generator"].num_anchors_per_location()
            arguments["rpn_head"] = RPNHead(num_anchors[0], name="rpn_head", **older["rpn_head"])
        if "proposal_generator" in older:
            arguments["proposal_generator"] = ProposalGenerator(**older["proposal_generator"])
        return RegionProposalNetwork(name="region_proposal_network", **arguments)

    def _default_roi_heads(self, older):
        """The default `RoIHeads`, with the older arguments given."""
        return RoIHeads(
            self.num_classes,
            roi_cropper=default_roi_cropper(
                self.feature_extractor,
                roi_align_crop_size=older.get("roi_align", {}).get("crop_size"),
                **older.get("crop_and_resize", {}),
            ),
            name="roi_heads",
            **older.get("roi_heads", {}),
        )

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
        return default_anchor_generator(extractor.first_stage_features_stride)

    # -- the two stages -----------------------------------------------------------------------

    def _first_stage(self, images, training):
        """Raw images → features and the RPN's outputs (proposals carry no gradient)."""
        resized, scale = self.resize_inputs(images)
        features = self.feature_extractor.extract_proposal_features(
            self.feature_extractor.preprocess(resized), training=training
        )
        maps = list(features) if isinstance(features, (list, tuple)) else [features]
        image_size = static_or_dynamic_hw(resized)
        rpn = self.region_proposal_network(maps, image_size=image_size, window=scale,
                                           training=training)
        return {**rpn, "features": maps, "image_size": image_size, "scale": scale}

    def _box_classifier_features(self, first_stage, rois, training):
        """RoIs `[B, R, 4]` rel_yxyx of the padded frame → the extractor's box classifier
        features of their crops, `[B * R, ...]`."""
        crops = self.roi_heads.crop(first_stage["features"], rois, first_stage["image_size"])
        return self.feature_extractor.extract_box_classifier_features(crops, training=training)

    def _second_stage(self, first_stage, rois, training):
        """RoIs `[B, R, 4]` rel_yxyx of the padded frame → class logits, box encodings and
        `"box_classifier_features"` `[B * R, ...]`."""
        box_features = self._box_classifier_features(first_stage, rois, training)
        return {
            **self.roi_heads(box_features, rois, training=training),
            "box_classifier_features": box_features,
        }

    def call(self, images, training=None):
        """Raw images → proposals and their classification (inference graph).

        `images`: raw `[B, H, W, 3]`, or resized ones with their true shapes (see
        `ObjectDetector.resize_inputs`); proposals and detections are clipped to each image's
        content window, as the TF OD API does with `true_image_shapes`.

        Returns a dict with `"proposals"` `[B, P, 4]` (rel_yxyx of the resized, padded frame,
        -1 padded), `"proposal_scores"` `[B, P]`, `"num_proposals"` `[B]`, `"class_logits"`
        `[B, P, num_classes + 1]`, `"box_encodings"` `[B, P, num_classes, 4]`, `"scale"`
        `[B, 2]` (content fraction of the frame per image) and the RPN outputs
        (`"anchors"` `[A, 4]` rel_yxyx of the padded frame, `"rpn_box_encodings"` `[B, A, 4]`,
        `"rpn_objectness_logits"` `[B, A, 2]`). With
        `number_of_stages=1` there are no class logits and box encodings.
        """
        return self._stage_outputs(self._first_stage(images, training), training)

    def _stage_outputs(self, first_stage, training):
        """`call`'s outputs from `_first_stage`'s."""
        outputs = {
            name: first_stage[name]
            for name in (
                "proposals", "proposal_scores", "num_proposals", "scale", "anchors",
                "rpn_box_encodings", "rpn_objectness_logits",
            )
        }  # fmt: skip
        if self.number_of_stages == 1:
            return outputs
        second_stage = self._second_stage(first_stage, first_stage["proposals"], training)
        second_stage.pop("box_classifier_features")
        return {**outputs, **second_stage}

    def forward_train(self, images, gt_boxes, gt_labels, training):
        first_stage = self._first_stage(images, training)
        gt_frame = to_padded_frame(gt_boxes, first_stage["scale"])
        if self.number_of_stages == 1:
            return {**first_stage, "gt_frame": gt_frame}
        rois = self.roi_heads.sample(first_stage["proposals"], gt_frame, gt_labels)
        second_stage = self._second_stage(first_stage, rois["rois"], training)
        return {**first_stage, **second_stage, **rois, "gt_frame": gt_frame}

    # -- losses and post-processing -----------------------------------------------------------

    def compute_losses(self, outputs, gt_boxes, gt_labels):
        losses = self.region_proposal_network.compute_losses(
            outputs, outputs["gt_frame"], gt_labels
        )
        if self.number_of_stages == 1:
            return {**losses, **{name: tf.zeros([], tf.float32) for name in RoIHeads.loss_names}}
        return {**losses, **self.roi_heads.compute_losses(outputs)}

    def postprocess(self, outputs):
        if self.number_of_stages != 1:
            return self.roi_heads.postprocess(outputs)
        # The proposals are the detections, all of one class (the TF OD API's class 0).
        proposals = outputs["proposals"]
        valid = tf.reduce_any(proposals >= 0.0, axis=-1)
        boxes = clip_boxes(from_padded_frame(proposals, outputs["scale"]))
        return {
            "boxes": tf.where(valid[..., None], boxes, -1.0),
            "labels": tf.where(valid, 1, -1),
            "confidences": outputs["proposal_scores"],
            "num_detections": outputs["num_proposals"],
        }

    # -- saving -------------------------------------------------------------------------------

    def load_own_variables(self, store):
        super().load_own_variables(store)
        # Files saved before the stages were components keep their heads elsewhere.
        older_arguments.older_weight_paths_applied(self, store)

    @classmethod
    def from_config(cls, config):
        # Configs saved before the stages were components have none: their older arguments
        # (kept in `config`) build the defaults, which clipped the boxes before NMS and did
        # not clip the anchors at inference then.
        if config.get("roi_heads") is None:
            config = {"clip_after_non_max_suppression": False, **config}
        if config.get("region_proposal_network") is None:
            config = {
                "clip_proposals_after_non_max_suppression": False,
                "clip_anchors_at_inference": False,
                **config,
            }
        return super().from_config({"region_proposal_network": None, "roi_heads": None, **config})

    def get_config(self):
        return {**super().get_config(), "number_of_stages": self.number_of_stages}
