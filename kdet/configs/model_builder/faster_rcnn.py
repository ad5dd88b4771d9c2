"""The TF OD API `FasterRcnn` message → `kdet.FasterRCNN` (`MaskRCNN` with instance masks,
`RFCN` with an `rfcn_box_predictor`, `ContextRCNN` with a `context_config`)."""

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.model_builder.common import construct
from kdet.configs.model_builder.components import FASTER_RCNN_ANCHOR_GENERATORS
from kdet.configs.model_builder.components import build_anchor_generator
from kdet.configs.model_builder.components import build_image_resizer
from kdet.configs.model_builder.feature_extractor import FASTER_RCNN_FEATURE_EXTRACTOR_SCHEMA
from kdet.configs.model_builder.feature_extractor import KERAS_SUFFIX
from kdet.configs.model_builder.feature_extractor import build_feature_extractor
from kdet.configs.model_builder.hyperparams import read_conv_hyperparams
from kdet.configs.model_builder.losses import CLASSIFICATION_LOSSES
from kdet.configs.model_builder.post_processing import build_non_max_suppression
from kdet.feature_extractors import FasterRCNNFeatureExtractor
from kdet.layers import ProposalGenerator
from kdet.losses import WeightedSoftmaxClassificationLoss
from kdet.models.faster_rcnn import RFCN
from kdet.models.faster_rcnn import BoxClassifierHead
from kdet.models.faster_rcnn import ContextRCNN
from kdet.models.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn import MaskHead
from kdet.models.faster_rcnn import MaskRCNN
from kdet.models.faster_rcnn import RegionProposalNetwork
from kdet.models.faster_rcnn import RFCNBoxPredictor
from kdet.models.faster_rcnn import RoIHeads
from kdet.models.faster_rcnn import RPNHead
from kdet.models.faster_rcnn import default_roi_cropper

# The fields that are constructor arguments have no default here: an absent field is not
# passed, so it takes the constructor's default (docs/faster_rcnn.md lists where that differs
# from the TF OD API proto default).
_FASTER_RCNN_SCHEMA = {
    "num_classes": Int(required=True, minimum=1),
    # 3: Mask R-CNN (`predict_instance_masks: true` in the box predictor).
    "number_of_stages": Int(default=2, minimum=1),
    # The older protos' switch for number_of_stages: 1.
    "first_stage_only": Bool(default=False),
    "image_resizer": SubMessage(required=True),
    "feature_extractor": SubMessage(required=True),
    "first_stage_anchor_generator": SubMessage(required=True),
    "first_stage_atrous_rate": Int(minimum=1),
    "first_stage_box_predictor_conv_hyperparams": SubMessage(),
    "first_stage_box_predictor_kernel_size": Int(minimum=1),
    "first_stage_box_predictor_depth": Int(minimum=1),
    "first_stage_minibatch_size": Int(minimum=1),
    "first_stage_positive_balance_fraction": Float(),
    "first_stage_nms_score_threshold": Float(),
    "first_stage_nms_iou_threshold": Float(),
    "first_stage_max_proposals": Int(minimum=1),
    "first_stage_localization_loss_weight": Float(),
    "first_stage_objectness_loss_weight": Float(),
    # Required with mask_rcnn_box_predictor; R-FCN crops no features for a box classifier.
    "initial_crop_size": Int(minimum=1),
    "maxpool_kernel_size": Int(minimum=1),
    "maxpool_stride": Int(minimum=1),
    "second_stage_box_predictor": SubMessage(required=True),
    "second_stage_batch_size": Int(minimum=1),
    "second_stage_balance_fraction": Float(),
    "second_stage_post_processing": SubMessage(required=True),
    "second_stage_localization_loss_weight": Float(),
    "second_stage_classification_loss_weight": Float(),
    "second_stage_classification_loss": SubMessage(),
    "second_stage_mask_prediction_loss_weight": Float(default=1.0),
    # kdet's data layer resizes (and pads) the masks with the images, whichever the value.
    "resize_masks": Switch(default=True),
    "hard_example_miner": SubMessage(),
    "clip_anchors_to_image": Bool(),
    "return_raw_detections_during_predict": Fixed(
        Bool(default=False),
        False,
        "kdet's predict returns the post-processed detections; the raw second-stage outputs "
        "are model(images)['box_encodings'] / ['class_logits']",
    ),
    "output_final_box_features": Fixed(
        Bool(default=False), False, "kdet's detections carry no box features"
    ),
    "output_final_box_rpn_features": Fixed(
        Bool(default=False), False, "kdet's detections carry no box features"
    ),
    # Implementation choices of the TF OD API that compute the same detections: kdet always
    # runs with static shapes, gathers and samples with fixed-size ops and updates batch norm
    # statistics in the layer.
    "inplace_batchnorm_update": Switch(),
    "use_matmul_crop_and_resize": Switch(),
    "use_matmul_gather_in_matcher": Switch(),
    "use_static_balanced_label_sampler": Switch(),
    "use_static_shapes": Switch(),
    "use_static_shapes_for_eval": Switch(),
    "use_partitioned_nms_in_first_stage": Switch(default=True),
    # Context R-CNN (`ContextRCNN`).
    "context_config": SubMessage(),
}

_TF2_CONTEXT_ONLY = "the TF OD API's TF2 Context R-CNN has only this value (the others are TF1)"
# `faster_rcnn.proto` `Context`: each field is the `ContextRCNN` argument of its name.
_CONTEXT_SCHEMA = {
    "max_num_context_features": Int(default=2000, minimum=1),
    "attention_bottleneck_dimension": Int(default=2048, minimum=1),
    "attention_temperature": Float(default=0.01),
    "context_feature_length": Int(default=2057, minimum=1),
    "use_self_attention": Fixed(Bool(default=False), False, _TF2_CONTEXT_ONLY),
    "use_long_term_attention": Fixed(Bool(default=True), True, _TF2_CONTEXT_ONLY),
    "self_attention_in_sequence": Fixed(Bool(default=False), False, _TF2_CONTEXT_ONLY),
    "num_attention_heads": Fixed(Int(default=1), 1, _TF2_CONTEXT_ONLY),
    "num_attention_layers": Fixed(Int(default=1), 1, _TF2_CONTEXT_ONLY),
    "attention_position": Enum(
        {"POST_BOX_CLASSIFIER": "post_box_classifier", "POST_RPN": "post_rpn"},
        default="POST_BOX_CLASSIFIER",
        unsupported={
            "ATTENTION_DEFAULT": "the TF OD API then adds no attention at all (a Faster R-CNN); "
            "use POST_BOX_CLASSIFIER or POST_RPN"
        },
    ),
}


def _build_first_stage_anchor_generator(node, extractor):
    """Reads `first_stage_anchor_generator`: a grid for single-map extractors, multiscale over
    the pyramid levels for FPN extractors."""
    chosen, generator = build_anchor_generator(node, FASTER_RCNN_ANCHOR_GENERATORS)
    if not extractor.is_fpn:
        if chosen.name != "grid_anchor_generator":
            raise chosen.error(
                f"'{chosen.path}' is set, but the feature extractor has one feature map: use "
                "grid_anchor_generator"
            )
        return generator
    levels = (extractor.fpn_min_level, extractor.fpn_max_level)
    if chosen.name != "multiscale_anchor_generator" or levels != (
        generator.min_level,
        generator.max_level,
    ):
        raise chosen.error(
            f"'{chosen.path}' does not match the FPN feature extractor: use "
            f"multiscale_anchor_generator with min_level {levels[0]} and max_level {levels[1]}"
        )
    return generator


def _read_second_stage_classification_loss(node):
    """Reads `second_stage_classification_loss` (absent: `weighted_softmax`, the TF OD API
    default) → the box classifier's class loss."""
    if node is None:
        return WeightedSoftmaxClassificationLoss()
    chosen = read_one_of(node, tuple(CLASSIFICATION_LOSSES))
    return CLASSIFICATION_LOSSES[chosen.name](chosen)


_MASK_RCNN_BOX_PREDICTOR_SCHEMA = {
    "fc_hyperparams": SubMessage(),
    "use_dropout": Bool(default=False),
    "dropout_keep_probability": Float(default=0.5),
    "box_code_size": Fixed(
        Int(default=4), 4, "the Faster R-CNN box coder encodes a box in 4 numbers"
    ),
    "share_box_across_classes": Bool(default=False),
    # The mask head (`MaskHead`), used with `number_of_stages: 3`.
    "predict_instance_masks": Bool(default=False),
    "mask_height": Int(default=15, minimum=1),
    "mask_width": Int(default=15, minimum=1),
    "mask_prediction_conv_depth": Int(default=256, minimum=0),
    "mask_prediction_num_conv_layers": Int(default=2, minimum=1),
    "masks_are_class_agnostic": Bool(default=False),
    "convolve_then_upsample_masks": Bool(default=False),
    "predict_keypoints": Fixed(
        Bool(default=False), False, "the TF OD API does not predict keypoints here either"
    ),
    # The hyperparams of the mask head only (checked, then unused without
    # predict_instance_masks, as the TF OD API builds no mask head then).
    "conv_hyperparams": SubMessage(),
}


def _build_mask_rcnn_box_predictor(node, num_classes):
    """Reads a TF OD API `MaskRCNNBoxPredictor` → `(BoxClassifierHead, MaskHead or None)`: the
    mask head with `predict_instance_masks: true`."""
    fields = read(node, _MASK_RCNN_BOX_PREDICTOR_SCHEMA)
    conv_hyperparams = read_conv_hyperparams(fields["conv_hyperparams"])
    box_head = construct(
        node,
        BoxClassifierHead,
        num_classes=num_classes,
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        share_box_across_classes=fields["share_box_across_classes"],
        fc_hyperparams=read_conv_hyperparams(fields["fc_hyperparams"], dense=True),
    )
    if not fields["predict_instance_masks"]:
        return box_head, None
    mask_head = construct(
        node,
        MaskHead,
        num_classes=num_classes,
        mask_height=fields["mask_height"],
        mask_width=fields["mask_width"],
        conv_depth=fields["mask_prediction_conv_depth"],
        num_conv_layers=fields["mask_prediction_num_conv_layers"],
        masks_are_class_agnostic=fields["masks_are_class_agnostic"],
        convolve_then_upsample=fields["convolve_then_upsample_masks"],
        conv_hyperparams=conv_hyperparams,
        name="mask_head",
    )
    return box_head, mask_head


_RFCN_BOX_PREDICTOR_SCHEMA = {
    "conv_hyperparams": SubMessage(required=True),
    "num_spatial_bins_height": Int(default=3, minimum=1),
    "num_spatial_bins_width": Int(default=3, minimum=1),
    "depth": Int(default=1024, minimum=1),
    "box_code_size": Fixed(
        Int(default=4), 4, "the Faster R-CNN box coder encodes a box in 4 numbers"
    ),
    "crop_height": Int(default=12, minimum=1),
    "crop_width": Int(default=12, minimum=1),
}


def _build_rfcn_box_predictor(node, num_classes):
    """Reads a TF OD API `RfcnBoxPredictor` → `RFCNBoxPredictor`."""
    fields = read(node, _RFCN_BOX_PREDICTOR_SCHEMA)
    crop_size = (fields["crop_height"], fields["crop_width"])
    bins = (fields["num_spatial_bins_height"], fields["num_spatial_bins_width"])
    for crop, bin_count, name in zip(crop_size, bins, ("height", "width")):
        if crop % bin_count:
            raise fields.error(
                f"crop_{name}",
                f"'{fields.path(f'crop_{name}')}' is {crop}, not a multiple of "
                f"num_spatial_bins_{name} {bin_count} (each bin gets crop_{name} / "
                f"num_spatial_bins_{name} samples)",
            )
    return construct(
        node,
        RFCNBoxPredictor,
        num_classes=num_classes,
        depth=fields["depth"],
        crop_size=crop_size,
        num_spatial_bins=bins,
        conv_hyperparams=read_conv_hyperparams(fields["conv_hyperparams"]),
        name="rfcn_box_predictor",
    )


def _build_second_stage_box_predictor(node, num_classes):
    """Reads `second_stage_box_predictor` → `(box predictor, mask head or None)`: a
    `BoxClassifierHead` (and `MaskHead`) from `mask_rcnn_box_predictor`, an
    `RFCNBoxPredictor` from `rfcn_box_predictor`."""
    chosen = read_one_of(node, ("mask_rcnn_box_predictor", "rfcn_box_predictor"))
    if chosen.name == "rfcn_box_predictor":
        return _build_rfcn_box_predictor(chosen, num_classes), None
    return _build_mask_rcnn_box_predictor(chosen, num_classes)


# Scalar fields → the argument of the component they configure.
_RPN_HEAD_FIELDS = {
    "first_stage_box_predictor_depth": "depth",
    "first_stage_box_predictor_kernel_size": "kernel_size",
    "first_stage_atrous_rate": "dilation_rate",
}
_PROPOSAL_GENERATOR_FIELDS = {
    "first_stage_max_proposals": "max_proposals",
    "first_stage_nms_iou_threshold": "nms_iou_threshold",
    "first_stage_nms_score_threshold": "score_threshold",
}
_REGION_PROPOSAL_NETWORK_FIELDS = {
    "clip_anchors_to_image": "clip_anchors_to_image",
    "first_stage_minibatch_size": "minibatch_size",
    "first_stage_positive_balance_fraction": "positive_balance_fraction",
    "first_stage_localization_loss_weight": "localization_loss_weight",
    "first_stage_objectness_loss_weight": "objectness_loss_weight",
}
_ROI_HEADS_FIELDS = {
    "second_stage_batch_size": "batch_size",
    "second_stage_balance_fraction": "balance_fraction",
    "second_stage_localization_loss_weight": "localization_loss_weight",
    "second_stage_classification_loss_weight": "classification_loss_weight",
}


def _given(fields, arguments):
    """`{argument: value}` of the fields of `arguments` the config sets (absent ones take the
    constructor default)."""
    return {argument: fields[name] for name, argument in arguments.items() if fields.has(name)}


def _build_roi_cropper(fields, extractor):
    """`initial_crop_size`, `maxpool_kernel_size`, `maxpool_stride` → the RoI cropper of the
    extractor (FPN extractors RoIAlign straight at the pooled size)."""
    for name in ("initial_crop_size", "maxpool_kernel_size", "maxpool_stride"):
        if not fields.has(name):
            raise fields.error(
                None,
                f"'{fields.path(name)}' is missing: Faster R-CNN's box classifier reads RoI "
                "crops of that size (only R-FCN, rfcn_box_predictor, needs none)",
            )
    crop_size, kernel_size, stride = (
        fields[name] for name in ("initial_crop_size", "maxpool_kernel_size", "maxpool_stride")
    )
    if kernel_size > crop_size:
        raise fields.error(
            "maxpool_kernel_size",
            f"'{fields.path('maxpool_kernel_size')}' is {kernel_size}, larger than "
            f"initial_crop_size {crop_size}",
        )
    return default_roi_cropper(extractor, crop_size, kernel_size, stride, tf_od_api_fpn=True)


def _build_region_proposal_network(node, fields, extractor, conv_hyperparams):
    """The `first_stage_*` fields → `RegionProposalNetwork` (`conv_hyperparams`: the read
    `first_stage_box_predictor_conv_hyperparams`)."""
    anchor_generator = _build_first_stage_anchor_generator(
        fields["first_stage_anchor_generator"], extractor
    )
    # Equal on every map (RegionProposalNetwork checks it). One pair of predictors per map,
    # as the TF OD API's first-stage ConvolutionalBoxPredictor has (with one map: one pair).
    num_anchors = anchor_generator.num_anchors_per_location()
    per_level = len(num_anchors) > 1
    rpn_head = construct(
        node,
        RPNHead,
        num_anchors_per_location=num_anchors if per_level else num_anchors[0],
        conv_hyperparams=conv_hyperparams,
        per_level_predictors=per_level,
        name="rpn_head",
        **_given(fields, _RPN_HEAD_FIELDS),
    )
    proposal_generator = construct(
        node, ProposalGenerator, **_given(fields, _PROPOSAL_GENERATOR_FIELDS)
    )
    return construct(
        node,
        RegionProposalNetwork,
        anchor_generator=anchor_generator,
        rpn_head=rpn_head,
        proposal_generator=proposal_generator,
        name="region_proposal_network",
        **_given(fields, _REGION_PROPOSAL_NETWORK_FIELDS),
    )


def _build_roi_heads(node, fields, extractor, num_classes, box_predictor):
    """The `second_stage_*` fields and the crop sizes → `RoIHeads` (R-FCN's box predictor
    crops the features itself: its RoI cropper is the unused default)."""
    cropper = {}
    if not isinstance(box_predictor, RFCNBoxPredictor):
        cropper["roi_cropper"] = _build_roi_cropper(fields, extractor)
    return construct(
        node,
        RoIHeads,
        num_classes=num_classes,
        **cropper,
        box_predictor=box_predictor,
        classification_loss=_read_second_stage_classification_loss(
            fields["second_stage_classification_loss"]
        ),
        non_max_suppression=build_non_max_suppression(fields["second_stage_post_processing"]),
        # The TF OD API samples RoIs from the proposals alone (no field says otherwise).
        add_groundtruth_to_proposals=False,
        name="roi_heads",
        **_given(fields, _ROI_HEADS_FIELDS),
    )


def _read_context(fields, box_predictor, masks):
    """The `ContextRCNN` arguments of `context_config` (`{}` without one)."""
    if not fields.has("context_config"):
        return {}
    if masks or isinstance(box_predictor, RFCNBoxPredictor):
        raise fields.error(
            "context_config",
            f"'{fields.path('context_config')}' is set with "
            + ("instance masks" if masks else "an rfcn_box_predictor")
            + ": kdet's ContextRCNN is a Faster R-CNN with a mask_rcnn_box_predictor "
            "without masks (as the TF OD API's ContextRCNNMetaArch builds it)",
        )
    context = read(fields["context_config"], _CONTEXT_SCHEMA)
    return {name: context[name] for name in _CONTEXT_SCHEMA}


def build_faster_rcnn(node):
    """Reads a TF OD API `FasterRcnn` message → `kdet.FasterRCNN`: the `first_stage_*` fields
    configure its `RegionProposalNetwork`, the `second_stage_*` fields and the crop sizes its
    `RoIHeads`. Every field is passed (an absent one as its proto default)."""
    fields = read(node, _FASTER_RCNN_SCHEMA)
    num_classes = fields["num_classes"]
    extractor = build_feature_extractor(
        fields["feature_extractor"],
        FasterRCNNFeatureExtractor,
        FASTER_RCNN_FEATURE_EXTRACTOR_SCHEMA,
    )
    if fields.has("hard_example_miner"):
        raise fields.error(
            "hard_example_miner",
            f"'{fields.path('hard_example_miner')}' is set, but kdet's Faster R-CNN samples "
            "second_stage_batch_size RoIs per image (balanced by second_stage_balance_fraction); "
            "hard example mining over all proposals is not in kdet yet",
        )
    # Built in the order FasterRCNN once built them itself (RPN hyperparams, box classifier,
    # RPN head): the initializers draw their seeds in that order, so seeded models start from
    # the same weights.
    rpn_conv_hyperparams = read_conv_hyperparams(
        fields["first_stage_box_predictor_conv_hyperparams"]
    )
    box_predictor, mask_head = _build_second_stage_box_predictor(
        fields["second_stage_box_predictor"], num_classes
    )
    roi_heads = _build_roi_heads(node, fields, extractor, num_classes, box_predictor)
    number_of_stages = 1 if fields["first_stage_only"] else fields["number_of_stages"]
    masks = {}
    if number_of_stages == 3:
        if mask_head is None:
            raise fields.error(
                "number_of_stages",
                f"'{fields.path('number_of_stages')}' is 3 (instance masks), but "
                "second_stage_box_predictor.mask_rcnn_box_predictor.predict_instance_masks is "
                "not true: set it, or use number_of_stages: 2",
            )
        masks = {
            "mask_head": mask_head,
            "mask_loss_weight": fields["second_stage_mask_prediction_loss_weight"],
        }
    context = _read_context(fields, box_predictor, masks)
    if context:
        model_class = ContextRCNN
        # The TF OD API builds a TF1 config's Context R-CNN (a TF-Slim extractor type) with
        # its TF1 attention, a TF2 (`_keras`) one's with its TF2 AttentionBlock: each config
        # gets the attention its checkpoints hold.
        extractor_type = fields["feature_extractor"].message.first("type")
        context["tf1_attention"] = not extractor_type.endswith(KERAS_SUFFIX)
    elif isinstance(box_predictor, RFCNBoxPredictor):
        if extractor.is_fpn:
            raise fields.error(
                "feature_extractor",
                f"'{fields.path('feature_extractor')}' is an FPN extractor, but "
                "rfcn_box_predictor (R-FCN) reads one feature map: use a single-map extractor",
            )
        model_class = RFCN
    else:
        model_class = MaskRCNN if masks else FasterRCNN
    return construct(
        node,
        model_class,
        num_classes=num_classes,
        number_of_stages=number_of_stages,
        **masks,
        **context,
        feature_extractor=extractor,
        image_resizer=build_image_resizer(fields["image_resizer"]),
        region_proposal_network=_build_region_proposal_network(
            node, fields, extractor, rpn_conv_hyperparams
        ),
        roi_heads=roi_heads,
    )
