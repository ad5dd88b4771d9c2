"""`RFCN`: Faster R-CNN whose second stage pools position-sensitive score maps (R-FCN)."""

import keras

from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn.rfcn_box_predictor import RFCNBoxPredictor
from kdet.models.faster_rcnn.roi_heads import RoIHeads


@keras.saving.register_keras_serializable(package="kdet")
class RFCN(FasterRCNN):
    """R-FCN: `kdet.FasterRCNN` with no per-RoI network in the second stage.

    The extractor's box classifier features (e.g. ResNet stage 5) run once on the whole
    proposal feature map, and `roi_heads.box_predictor`, an `RFCNBoxPredictor`, pools
    every RoI from position-sensitive score maps computed on them. The rest is Faster
    R-CNN's: the region proposal network, the RoI sampling and targets, the losses and the
    second-stage NMS (the TF OD API's `RFCNMetaArch`, built from a `faster_rcnn { … }`
    config whose `second_stage_box_predictor` is an `rfcn_box_predictor`). The RoI cropper
    of `roi_heads` is not used.

    Args:
        num_classes, feature_extractor, image_resizer, region_proposal_network,
            number_of_stages: as in `kdet.FasterRCNN`. The extractor must give one feature
            map (not FPN) and box classifier features that are maps `[B, h, w, C]`.
        roi_heads: a `kdet.models.faster_rcnn.RoIHeads` of `num_classes` whose
            `box_predictor` is an `RFCNBoxPredictor`. Defaults to `RoIHeads(num_classes,
            box_predictor=RFCNBoxPredictor(num_classes))` (depth 1024, 12 x 12 crops, 3 x 3
            bins).
        **kwargs: passed to `kdet.FasterRCNN`.

    Example:
    ```python
    model = kdet.models.faster_rcnn.RFCN(
        num_classes=3,
        feature_extractor="faster_rcnn_resnet101",
        image_resizer=kdet.layers.FixedShapeResizer(512, 512),
    )
    model.compile()
    model.fit(images, {"boxes": boxes, "labels": labels})
    detections = model.predict(images)
    ```

    Reference:
        [Dai et al., 2016](https://arxiv.org/abs/1605.06409); TF OD API
        `meta_architectures/rfcn_meta_arch.py`.
    """

    def __init__(self, num_classes, feature_extractor, roi_heads=None, **kwargs):
        super().__init__(num_classes, feature_extractor, roi_heads=roi_heads, **kwargs)
        if self.feature_extractor.is_fpn:
            raise ValueError(
                f"RFCN: the feature extractor {self.feature_extractor.name!r} is an FPN; R-FCN "
                "reads one feature map (the TF OD API's too): use a single-map extractor"
            )
        if not getattr(self.roi_heads.box_predictor, "takes_rois", False):
            raise ValueError(
                "RFCN: roi_heads.box_predictor must be an RFCNBoxPredictor (it pools the RoIs "
                f"itself); got {type(self.roi_heads.box_predictor).__name__}"
            )

    def _default_roi_heads(self, older):
        return RoIHeads(
            self.num_classes,
            box_predictor=RFCNBoxPredictor(self.num_classes),
            name="roi_heads",
            **older.get("roi_heads", {}),
        )

    def _box_classifier_features(self, first_stage, rois, training):
        """The extractor's box classifier features of the whole proposal feature map, `[B,
        h, w, C]` (the box predictor crops them at `rois`)."""
        return self.feature_extractor.extract_box_classifier_features(
            first_stage["features"][0], training=training
        )
