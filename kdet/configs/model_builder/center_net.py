"""The TF OD API `CenterNet` message → `kdet.CenterNet`.

Read: the feature extractor (by `type` from the registry, a TF2 `_keras` suffix dropped; its
`channel_means`, `channel_stds`, `bgr_ordering`, `use_depthwise`, `depth_multiplier`,
`use_separable_conv`, `upsampling_interpolation` go to the extractor when its constructor takes
them, and are otherwise accepted only with their defaults), `image_resizer`, `use_depthwise`,
`object_center_params`, `object_detection_task`, each `keypoint_estimation_task` (its
keypoints, labels and class from the label map at `keypoint_label_map_path`, as the TF OD API
reads them) and `deepmac_mask_estimation` (`kdet.models.center_net.DeepMACMaskTask`; its
weak-supervision losses, full-resolution masks, subsampling, per-class overlap and
`cond_inst` mask networks refused, with keypoint tasks, which the TF OD API's DeepMAC model
drops).
Refused with the field named: `use_labeled_classes`,
`keypoint_weights_for_center`, `post_processing` (NMS after the peaks), keypoint depth,
`rescore_instances`, `argmax_postprocessing`, the `gaussian_weighted_const` ranking, heatmap
losses other than `penalty_reduced_logistic_focal_loss`, a model without
`object_detection_task`; the tasks `check_architecture` names (masks, DensePose, tracking).
"""

import os

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import String
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.field_reader import same_value
from kdet.configs.field_reader import show
from kdet.configs.model_builder.common import construct
from kdet.configs.model_builder.components import build_image_resizer
from kdet.configs.model_builder.feature_extractor import _constructor_arguments
from kdet.configs.model_builder.feature_extractor import _feature_extractor_class
from kdet.configs.model_builder.losses import CLASSIFICATION_LOSSES
from kdet.configs.model_builder.losses import LOCALIZATION_LOSSES
from kdet.configs.model_builder.losses import build_loss_choice
from kdet.data.augmentation.geometric import JITTER_MODES
from kdet.data.errors import DataError
from kdet.data.label_map import read_label_map_items
from kdet.data.label_map import read_label_map_keypoints
from kdet.feature_extractors import CenterNetFeatureExtractor
from kdet.losses import PenaltyReducedLogisticFocalLoss
from kdet.losses import WeightedDiceClassificationLoss
from kdet.models.center_net import CenterNet
from kdet.models.center_net import DeepMACMaskTask
from kdet.models.center_net import KeypointEstimationTask
from kdet.models.center_net.deepmac import MASK_NETWORK_TYPES

_FEATURE_EXTRACTOR_SCHEMA = {
    "type": String(required=True),
    "channel_means": Repeated(Float()),
    "channel_stds": Repeated(Float()),
    "bgr_ordering": Bool(default=False),
    "use_depthwise": Bool(default=False),
    "depth_multiplier": Float(default=1.0),
    "use_separable_conv": Bool(default=False),
    "upsampling_interpolation": String(default="nearest"),
}
_CENTER_NET_SCHEMA = {
    "num_classes": Int(required=True, minimum=1),
    "feature_extractor": SubMessage(required=True),
    "image_resizer": SubMessage(required=True),
    "use_depthwise": Bool(default=False),
    # The TF OD API's sparse and dense heatmap ops compute the same heatmap.
    "compute_heatmap_sparse": Switch(default=False),
    "object_detection_task": SubMessage(),
    "object_center_params": SubMessage(required=True),
    "keypoint_label_map_path": String(),
    "keypoint_estimation_task": Repeated(SubMessage()),
    "deepmac_mask_estimation": SubMessage(),
    "post_processing": SubMessage(),
}
_HEAD_PARAMS_SCHEMA = {"num_filters": Repeated(Int(minimum=1)),
                       "kernel_sizes": Repeated(Int(minimum=1))}
_OBJECT_DETECTION_SCHEMA = {
    "task_loss_weight": Float(default=1.0),
    "offset_loss_weight": Float(default=1.0),
    "scale_loss_weight": Float(default=0.1),
    "localization_loss": SubMessage(),
    "scale_head_params": SubMessage(),
    "offset_head_params": SubMessage(),
}
_NOT_IN_KDET = "not in kdet's CenterNet yet"
_OBJECT_CENTER_SCHEMA = {
    "object_center_loss_weight": Float(default=1.0),
    "classification_loss": SubMessage(),
    "heatmap_bias_init": Float(default=-2.19),
    "min_box_overlap_iou": Float(default=0.7),
    "max_box_predictions": Int(default=100, minimum=1),
    "use_labeled_classes": Fixed(
        Bool(default=False), False,
        f"computing the center loss on the labelled classes of each image only is {_NOT_IN_KDET}",
    ),
    "keypoint_weights_for_center": Repeated(Float()),
    "center_head_params": SubMessage(),
    "peak_max_pool_kernel_size": Int(default=3, minimum=1),
}
_KEYPOINT_TASK_SCHEMA = {
    "task_name": String(required=True),
    "task_loss_weight": Float(default=1.0),
    "loss": SubMessage(),
    "keypoint_class_name": String(required=True),
    "keypoint_label_to_std": Repeated(SubMessage()),
    "keypoint_regression_loss_weight": Float(default=1.0),
    "keypoint_heatmap_loss_weight": Float(default=1.0),
    "keypoint_offset_loss_weight": Float(default=1.0),
    "heatmap_bias_init": Float(default=-2.19),
    "keypoint_candidate_score_threshold": Float(default=0.1),
    "num_candidates_per_keypoint": Int(default=100, minimum=1),
    "peak_max_pool_kernel_size": Int(default=3, minimum=1),
    "unmatched_keypoint_score": Float(default=0.1),
    "box_scale": Float(default=1.2),
    "candidate_search_scale": Float(default=0.3),
    "candidate_ranking_mode": String(default="min_distance"),
    "score_distance_offset": Float(default=1.0),
    "score_distance_multiplier": Float(default=0.1),
    "std_dev_multiplier": Float(default=1.0),
    "offset_peak_radius": Int(default=0, minimum=0),
    "per_keypoint_offset": Bool(default=False),
    "predict_depth": Fixed(Bool(default=False), False, f"keypoint depth is {_NOT_IN_KDET}"),
    "per_keypoint_depth": Fixed(Bool(default=False), False, f"keypoint depth is {_NOT_IN_KDET}"),
    "keypoint_depth_loss_weight": Float(default=1.0),
    "clip_out_of_frame_keypoints": Bool(default=False),
    "rescore_instances": Fixed(
        Bool(default=False), False, f"rescoring detections by their keypoints is {_NOT_IN_KDET}"
    ),
    "rescoring_threshold": Float(default=0.0),
    "gaussian_denom_ratio": Float(default=0.1),
    "argmax_postprocessing": Fixed(
        Bool(default=False), False,
        f"the argmax keypoint post-processing (for browser export) is {_NOT_IN_KDET}",
    ),
    "heatmap_head_params": SubMessage(),
    "offset_head_params": SubMessage(),
    "regress_head_params": SubMessage(),
}
_NOT_IN_DEEPMAC = "not in kdet's DeepMAC yet"
_WEAK_LOSS = f"{_NOT_IN_DEEPMAC} (only the mask loss on ground-truth masks is)"
# The TF OD API `CenterNet.DeepMACMaskEstimation` message. The parameters of a refused feature
# (its weight at 0) are read and, as in the TF OD API, without effect.
_DEEPMAC_SCHEMA = {
    "classification_loss": SubMessage(),
    "task_loss_weight": Float(default=1.0),
    "dim": Int(default=256, minimum=1),
    "pixel_embedding_dim": Int(default=16, minimum=1),
    "allowed_masked_classes_ids": Repeated(Int(minimum=1)),
    "mask_size": Int(default=32, minimum=1),
    "mask_num_subsamples": Int(default=-1),
    "use_xy": Bool(default=True),
    "network_type": String(default="hourglass52"),
    "use_instance_embedding": Bool(default=True),
    "num_init_channels": Int(default=64, minimum=1),
    "predict_full_resolution_masks": Fixed(
        Bool(default=False), False, f"full-resolution masks are {_NOT_IN_DEEPMAC}"
    ),
    "postprocess_crop_size": Int(default=256, minimum=1),
    "max_roi_jitter_ratio": Float(default=0.0),
    "jitter_mode": Enum(JITTER_MODES, default="DEFAULT"),
    "box_consistency_loss_weight": Fixed(
        Float(default=0.0), 0.0, f"the box consistency loss is {_WEAK_LOSS}"
    ),
    "feature_consistency_threshold": Float(default=0.4),
    "feature_consistency_dilation": Int(default=2),
    "feature_consistency_loss_weight": Fixed(
        Float(default=0.0), 0.0, f"the feature consistency loss is {_WEAK_LOSS}"
    ),
    "box_consistency_loss_normalize": Enum(
        ("NORMALIZE_AUTO", "NORMALIZE_GROUNDTRUTH_COUNT", "NORMALIZE_BALANCED"),
        default="NORMALIZE_AUTO",
    ),
    "box_consistency_tightness": Bool(default=False),
    "feature_consistency_warmup_steps": Int(default=0),
    "feature_consistency_warmup_start": Int(default=0),
    "feature_consistency_type": Enum(
        ("CONSISTENCY_DEFAULT_LAB", "CONSISTENCY_FEATURE_MAP"), default="CONSISTENCY_DEFAULT_LAB"
    ),
    "feature_consistency_comparison": Enum(
        ("COMPARISON_DEFAULT_GAUSSIAN", "COMPARISON_NORMALIZED_DOTPROD"),
        default="COMPARISON_DEFAULT_GAUSSIAN",
    ),
    "use_only_last_stage": Bool(default=False),
    "augmented_self_supervision_max_translation": Float(default=0.0),
    "augmented_self_supervision_flip_probability": Float(default=0.0),
    "augmented_self_supervision_loss_weight": Fixed(
        Float(default=0.0), 0.0, f"the augmented self-supervision loss is {_WEAK_LOSS}"
    ),
    "augmented_self_supervision_warmup_start": Int(default=0),
    "augmented_self_supervision_warmup_steps": Int(default=0),
    "augmented_self_supervision_loss": Enum(
        ("LOSS_UNSET", "LOSS_DICE", "LOSS_MSE", "LOSS_KL_DIV"), default="LOSS_DICE"
    ),
    "augmented_self_supervision_scale_min": Float(default=1.0),
    "augmented_self_supervision_scale_max": Float(default=1.0),
    "pointly_supervised_keypoint_loss_weight": Fixed(
        Float(default=0.0), 0.0, f"the pointly supervised keypoint loss is {_WEAK_LOSS}"
    ),
    "ignore_per_class_box_overlap": Fixed(
        Bool(default=False), False,
        f"ignoring the overlaps of boxes of one class in the mask loss is {_NOT_IN_DEEPMAC}",
    ),
}
# `DeepMACMaskEstimation` fields copied as they are to `DeepMACMaskTask`.
_DEEPMAC_ARGUMENTS = ("task_loss_weight", "dim", "pixel_embedding_dim",
                      "allowed_masked_classes_ids", "mask_size", "use_xy", "network_type",
                      "use_instance_embedding", "num_init_channels", "use_only_last_stage",
                      "max_roi_jitter_ratio", "jitter_mode")
# Arguments of the CenterNet feature extractors that a config field sets, beyond the base
# class's channel_means, channel_stds and bgr_ordering.
_EXTRACTOR_OPTIONS = ("use_depthwise", "depth_multiplier", "use_separable_conv",
                      "upsampling_interpolation")


def build_center_net(node):
    """Reads a TF OD API `CenterNet` message → `kdet.CenterNet`."""
    fields = read(node, _CENTER_NET_SCHEMA)
    if fields.has("post_processing"):
        raise fields.error(
            "post_processing",
            f"'{fields.path('post_processing')}': non-max suppression after the heatmap peaks is "
            f"{_NOT_IN_KDET} (the peaks' max-pool suppression is); leave it out",
        )
    if not fields.has("object_detection_task"):
        raise fields.error(
            "object_detection_task",
            f"'{node.path}' has no object_detection_task: a CenterNet without boxes (keypoints "
            f"only) is {_NOT_IN_KDET}; add object_detection_task {{ }}",
        )
    center = _read_object_center_params(fields["object_center_params"])
    detection = _read_object_detection_task(fields["object_detection_task"])
    mask_task = _read_deepmac(fields)
    tasks = _read_keypoint_tasks(fields)
    image_resizer = build_image_resizer(fields["image_resizer"])
    extractor = _build_feature_extractor(fields["feature_extractor"])
    return construct(
        node,
        CenterNet,
        num_classes=fields["num_classes"],
        feature_extractor=extractor,
        image_resizer=image_resizer,
        keypoint_tasks=tasks,
        mask_task=mask_task,
        use_depthwise=fields["use_depthwise"],
        **center,
        **detection,
    )


def _build_feature_extractor(node):
    """Reads a TF OD API `CenterNetFeatureExtractor` → the registered extractor of its type."""
    fields = read(node, _FEATURE_EXTRACTOR_SCHEMA)
    name, extractor_class = _feature_extractor_class(fields, CenterNetFeatureExtractor)
    accepted = _constructor_arguments(extractor_class)
    kwargs = {
        "channel_means": fields["channel_means"],
        "channel_stds": fields["channel_stds"],
        "bgr_ordering": fields["bgr_ordering"],
    }
    for argument in _EXTRACTOR_OPTIONS:
        value, default = fields[argument], _FEATURE_EXTRACTOR_SCHEMA[argument].default
        if argument in accepted:
            kwargs[argument] = value
        elif not same_value(value, default):
            raise fields.error(
                argument,
                f"'{fields.path(argument)}' is {show(value)}, but the '{name}' feature "
                f"extractor takes no {argument}; only {show(default)} (the TF OD API default) "
                "is accepted",
            )
    return construct(node, extractor_class, **kwargs)


def _head_params(fields, name, prefix):
    """A `PredictionHeadParams` field → `{prefix_num_filters, prefix_kernel_sizes}` (absent:
    nothing, the model's defaults `[256]` and `[3]`)."""
    if not fields.has(name):
        return {}
    head = read(fields[name], _HEAD_PARAMS_SCHEMA)
    num_filters, kernel_sizes = head["num_filters"] or [256], head["kernel_sizes"] or [3]
    if len(num_filters) != len(kernel_sizes):
        raise fields.error(
            name,
            f"'{fields.path(name)}' has {len(num_filters)} num_filters and {len(kernel_sizes)} "
            "kernel_sizes; give one of each per convolution",
        )
    return {f"{prefix}_num_filters": num_filters, f"{prefix}_kernel_sizes": kernel_sizes}


def _read_heatmap_loss(fields, name):
    """A `ClassificationLoss` holding `penalty_reduced_logistic_focal_loss` → the loss."""
    if not fields.has(name):
        return PenaltyReducedLogisticFocalLoss()
    chosen = read_one_of(fields[name], ("penalty_reduced_logistic_focal_loss",))
    loss = read(chosen, {"alpha": Float(default=2.0), "beta": Float(default=4.0)})
    return PenaltyReducedLogisticFocalLoss(alpha=loss["alpha"], beta=loss["beta"])


def _read_localization_loss(fields, name):
    """A `LocalizationLoss` message → a kdet localization loss (absent: L1)."""
    if not fields.has(name):
        return None
    return build_loss_choice(fields[name], LOCALIZATION_LOSSES)


def _read_object_center_params(node):
    fields = read(node, _OBJECT_CENTER_SCHEMA)
    if fields["keypoint_weights_for_center"]:
        raise fields.error(
            "keypoint_weights_for_center",
            f"'{fields.path('keypoint_weights_for_center')}': object centers from keypoints "
            f"are {_NOT_IN_KDET} (centers are those of the boxes)",
        )
    return {
        "center_loss": _read_heatmap_loss(fields, "classification_loss"),
        "object_center_loss_weight": fields["object_center_loss_weight"],
        "heatmap_bias_init": fields["heatmap_bias_init"],
        "min_box_overlap_iou": fields["min_box_overlap_iou"],
        "max_box_predictions": fields["max_box_predictions"],
        "peak_max_pool_kernel_size": fields["peak_max_pool_kernel_size"],
        **_head_params(fields, "center_head_params", "center_head"),
    }


def _read_object_detection_task(node):
    fields = read(node, _OBJECT_DETECTION_SCHEMA)
    return {
        "localization_loss": _read_localization_loss(fields, "localization_loss"),
        "task_loss_weight": fields["task_loss_weight"],
        "scale_loss_weight": fields["scale_loss_weight"],
        "offset_loss_weight": fields["offset_loss_weight"],
        **_head_params(fields, "scale_head_params", "scale_head"),
        **_head_params(fields, "offset_head_params", "offset_head"),
    }


def _build_weighted_dice(node):
    """Reads a TF OD API `WeightedDiceClassificationLoss`."""
    fields = read(node, {"squared_normalization": Bool(default=False),
                         "is_prediction_probability": Bool(default=False)})
    return WeightedDiceClassificationLoss(fields["squared_normalization"],
                                          fields["is_prediction_probability"])


_MASK_LOSSES = {**CLASSIFICATION_LOSSES,
                "weighted_dice_classification_loss": _build_weighted_dice}


def _read_deepmac(fields):
    """The `deepmac_mask_estimation` field of a `CenterNet` message → a `DeepMACMaskTask`
    (absent: None)."""
    name = "deepmac_mask_estimation"
    if not fields.has(name):
        return None
    if fields["keypoint_estimation_task"]:
        raise fields.error(
            "keypoint_estimation_task",
            f"'{fields.path('keypoint_estimation_task')}' with {name}: the TF OD API's DeepMAC "
            "model has no keypoint tasks (it drops them); remove them or the masks",
        )
    return build_deepmac_mask_task(fields[name])


def build_deepmac_mask_task(node):
    """Reads a TF OD API `CenterNet.DeepMACMaskEstimation` message → `DeepMACMaskTask`."""
    deepmac = read(node, _DEEPMAC_SCHEMA)
    if deepmac["mask_num_subsamples"] > 0:
        raise deepmac.error(
            "mask_num_subsamples",
            f"'{deepmac.path('mask_num_subsamples')}' is {deepmac['mask_num_subsamples']}: "
            "subsampling the masks is not supported (the TF OD API refuses it too)",
        )
    network_type = deepmac["network_type"]
    if network_type not in MASK_NETWORK_TYPES:
        raise deepmac.error(
            "network_type",
            f"'{deepmac.path('network_type')}' is {network_type!r}; kdet's DeepMAC mask "
            f"networks are {list(MASK_NETWORK_TYPES)}",
        )
    loss = {}
    if deepmac.has("classification_loss"):
        loss["classification_loss"] = build_loss_choice(deepmac["classification_loss"],
                                                        _MASK_LOSSES)
    return construct(
        node,
        DeepMACMaskTask,
        **{argument: deepmac[argument] for argument in _DEEPMAC_ARGUMENTS},
        **loss,
    )


def _read_keypoint_tasks(fields):
    """The `keypoint_estimation_task`s, their keypoints read from the label map."""
    messages = fields["keypoint_estimation_task"]
    if not messages:
        return []
    path_field = "keypoint_label_map_path"
    label_map = fields[path_field]
    if not label_map:
        raise fields.error(
            path_field,
            f"'{fields.node.path}' has keypoint_estimation_task but no {path_field}: the label "
            "map with the keypoints { id label } of the keypoint classes is needed",
        )
    if not os.path.exists(label_map):
        raise fields.error(path_field, f"'{fields.path(path_field)}': no file {label_map!r}")
    try:
        classes = {item.name: item.id for item in read_label_map_items(label_map)}
        keypoints = read_label_map_keypoints(label_map)
    except DataError as error:
        raise fields.error(path_field, f"'{fields.path(path_field)}': {error}") from None
    return [
        _read_keypoint_task(Node(message, fields.path("keypoint_estimation_task")), classes,
                            keypoints, label_map)
        for message in messages
    ]


def _read_keypoint_task(node, classes, keypoints, label_map):
    fields = read(node, _KEYPOINT_TASK_SCHEMA)
    class_name = fields["keypoint_class_name"]
    class_id = classes.get(class_name)
    if class_id is None or class_id not in keypoints:
        raise fields.error(
            "keypoint_class_name",
            f"'{fields.path('keypoint_class_name')}' is {class_name!r}, but the label map "
            f"{label_map} has no item of that name with keypoints; items with keypoints: "
            f"{sorted(name for name, id_ in classes.items() if id_ in keypoints)}",
        )
    points = keypoints[class_id]
    labels = [point.label for point in points]
    std_devs = dict.fromkeys(labels, 1.0)
    for entry in fields["keypoint_label_to_std"]:
        pair = read(Node(entry, fields.path("keypoint_label_to_std")),
                    {"key": String(required=True), "value": Float(required=True)})
        if pair["key"] not in std_devs:
            raise pair.error(
                "key", f"'{pair.path('key')}' is {pair['key']!r}, not a keypoint label of "
                f"{class_name!r} in {label_map} ({labels})",
            )
        std_devs[pair["key"]] = pair["value"]
    ranking = fields["candidate_ranking_mode"]
    if ranking == "gaussian_weighted_const":
        raise fields.error(
            "candidate_ranking_mode",
            f"'{fields.path('candidate_ranking_mode')}' is 'gaussian_weighted_const', "
            f"{_NOT_IN_KDET}",
        )
    loss = {}
    if fields.has("loss"):
        loss_fields = read(fields["loss"], {"classification_loss": SubMessage(),
                                            "localization_loss": SubMessage()})
        loss = {
            "heatmap_loss": _read_heatmap_loss(loss_fields, "classification_loss"),
            "localization_loss": _read_localization_loss(loss_fields, "localization_loss"),
        }
    copied = (
        "task_loss_weight", "keypoint_regression_loss_weight", "keypoint_heatmap_loss_weight",
        "keypoint_offset_loss_weight", "heatmap_bias_init", "keypoint_candidate_score_threshold",
        "num_candidates_per_keypoint", "peak_max_pool_kernel_size", "unmatched_keypoint_score",
        "box_scale", "candidate_search_scale", "score_distance_offset",
        "score_distance_multiplier", "std_dev_multiplier", "offset_peak_radius",
        "per_keypoint_offset", "clip_out_of_frame_keypoints",
    )
    return construct(
        node,
        KeypointEstimationTask,
        task_name=fields["task_name"],
        class_id=class_id,
        keypoint_indices=[point.id for point in points],
        keypoint_labels=labels,
        keypoint_std_dev=[std_devs[label] for label in labels],
        candidate_ranking_mode=ranking,
        **{name: fields[name] for name in copied},
        **loss,
        **_head_params(fields, "heatmap_head_params", "heatmap_head"),
        **_head_params(fields, "offset_head_params", "offset_head"),
        **_head_params(fields, "regress_head_params", "regress_head"),
    )
