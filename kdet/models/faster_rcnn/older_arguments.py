"""`kdet.FasterRCNN` as it was before its stages became components: its arguments and where
its files stored the stages' weights.

Until 2026-12 `FasterRCNN` took the TF OD API `first_stage_*` / `second_stage_*` fields as its
own arguments and held the RPN head and the box classifier itself. Those arguments are still
accepted (code written then, `.keras` files and zoo `config.json` files saved then): each goes
to the component it configures now. Files saved then stored the two heads' weights at
`layers/<head class>`; they now live below `region_proposal_network` / `roi_heads`, and
`older_weight_paths_applied` reads them from where those files put them.
"""

import re

import keras

from kdet.layers.multi_class_non_max_suppression import with_model_arguments
from kdet.models.faster_rcnn.roi_heads import default_non_max_suppression

# Older argument → (component, its argument). Components: "rpn_head", "proposal_generator",
# "region_proposal_network", "crop_and_resize" (the single-map RoI cropper), "roi_align" (the
# FPN RoI cropper), "roi_heads".
_DESTINATIONS = {
    "first_stage_box_predictor_depth": ("rpn_head", "depth"),
    "first_stage_box_predictor_kernel_size": ("rpn_head", "kernel_size"),
    "first_stage_atrous_rate": ("rpn_head", "dilation_rate"),
    "first_stage_box_predictor_conv_hyperparams": ("rpn_head", "conv_hyperparams"),
    "first_stage_box_predictor_kernel_regularizer": ("rpn_head", "kernel_regularizer"),
    "first_stage_max_proposals": ("proposal_generator", "max_proposals"),
    "first_stage_nms_iou_threshold": ("proposal_generator", "nms_iou_threshold"),
    "first_stage_nms_score_threshold": ("proposal_generator", "score_threshold"),
    "first_stage_anchor_generator": ("region_proposal_network", "anchor_generator"),
    "first_stage_matcher": ("region_proposal_network", "matcher"),
    "clip_anchors_to_image": ("region_proposal_network", "clip_anchors_to_image"),
    # Set by `FasterRCNN.from_config` for files of that time, which did not clip at inference.
    "clip_anchors_at_inference": ("region_proposal_network", "clip_anchors_at_inference"),
    "first_stage_minibatch_size": ("region_proposal_network", "minibatch_size"),
    "first_stage_positive_balance_fraction": (
        "region_proposal_network",
        "positive_balance_fraction",
    ),
    "first_stage_localization_loss_weight": (
        "region_proposal_network",
        "localization_loss_weight",
    ),
    "first_stage_objectness_loss_weight": ("region_proposal_network", "objectness_loss_weight"),
    "initial_crop_size": ("crop_and_resize", "crop_size"),
    "maxpool_kernel_size": ("crop_and_resize", "maxpool_kernel_size"),
    "maxpool_stride": ("crop_and_resize", "maxpool_stride"),
    "roi_align_crop_size": ("roi_align", "crop_size"),
    "second_stage_box_predictor": ("roi_heads", "box_predictor"),
    "second_stage_matcher": ("roi_heads", "matcher"),
    "second_stage_classification_loss": ("roi_heads", "classification_loss"),
    "second_stage_non_max_suppression": ("roi_heads", "non_max_suppression"),
    "second_stage_batch_size": ("roi_heads", "batch_size"),
    "second_stage_balance_fraction": ("roi_heads", "balance_fraction"),
    "second_stage_localization_loss_weight": ("roi_heads", "localization_loss_weight"),
    "second_stage_classification_loss_weight": ("roi_heads", "classification_loss_weight"),
    "add_groundtruth_to_proposals": ("roi_heads", "add_groundtruth_to_proposals"),
    # Set by `FasterRCNN.from_config` for files of that time, which clipped before NMS.
    "clip_after_non_max_suppression": ("roi_heads", "clip_after_non_max_suppression"),
    "clip_proposals_after_non_max_suppression": (
        "proposal_generator",
        "clip_after_non_max_suppression",
    ),
}
# Older post-processing arguments, folded into the second-stage NMS.
_NMS_ARGUMENTS = ("score_threshold", "iou_threshold", "max_detections_per_class", "max_detections")
# The stage each component belongs to (a stage passed whole takes none of its older arguments).
_STAGE_OF = {
    "rpn_head": "region_proposal_network",
    "proposal_generator": "region_proposal_network",
    "region_proposal_network": "region_proposal_network",
    "crop_and_resize": "roi_heads",
    "roi_align": "roi_heads",
    "roi_heads": "roi_heads",
}


def pop_older_arguments(kwargs):
    """Takes the older arguments out of `kwargs` (a `FasterRCNN`'s keyword arguments).

    Args:
        kwargs: dict, changed in place: the older arguments are removed.

    Returns:
        `{component: {argument: value}}` for the components of `_DESTINATIONS` that got any
        (serialized Keras objects of `.keras` files revived; `None` values dropped: they meant
        the default then too), with the older NMS scalars folded into
        `roi_heads["non_max_suppression"]`.
    """
    arguments = {}
    for name in [name for name in kwargs if name in _DESTINATIONS]:
        value = kwargs.pop(name)
        if isinstance(value, dict) and "class_name" in value:
            value = keras.saving.deserialize_keras_object(value)
        if value is not None:
            component, argument = _DESTINATIONS[name]
            arguments.setdefault(component, {})[argument] = value
    nms_scalars = {name: kwargs.pop(name) for name in _NMS_ARGUMENTS if name in kwargs}
    if any(value is not None for value in nms_scalars.values()):
        roi_heads = arguments.setdefault("roi_heads", {})
        roi_heads["non_max_suppression"] = with_model_arguments(
            roi_heads.get("non_max_suppression"),
            default_non_max_suppression(),
            "second_stage_non_max_suppression",
            **nms_scalars,
        )
    return arguments


def older_names(older, stage):
    """The older `FasterRCNN` arguments in `older` (what `pop_older_arguments` returned) that
    configure a component of `stage` (`"region_proposal_network"` or `"roi_heads"`)."""
    return sorted(
        name
        for name, (component, argument) in _DESTINATIONS.items()
        if _STAGE_OF[component] == stage and argument in older.get(component, {})
    )


def _snake_case(name):
    """Keras's name of a layer in a saved `layers` list: its class name in snake case."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def older_weight_paths(model):
    """`{path now: path in older files}` of the layers that moved, for a `FasterRCNN`.

    Keras stores a model's weights by its attribute tree, and the layers of a subclassed
    model in the list `layers`, each under its class name in snake case: the RPN head was at
    `layers/rpn_head`, the box classifier at `layers/box_classifier_head`; they are now at
    `layers/region_proposal_network/rpn_head` and `layers/ro_i_heads/box_predictor`.
    """
    rpn, roi_heads = model.region_proposal_network, model.roi_heads
    return {
        f"layers/{_snake_case(type(rpn).__name__)}/rpn_head": (
            f"layers/{_snake_case(type(rpn.rpn_head).__name__)}"
        ),
        f"layers/{_snake_case(type(roi_heads).__name__)}/box_predictor": (
            f"layers/{_snake_case(type(roi_heads.box_predictor).__name__)}"
        ),
    }


def older_weight_paths_applied(model, store):
    """Makes Keras read the moved layers' weights where an older file has them.

    Called from `FasterRCNN.load_own_variables`, which Keras calls with the weights store
    before it loads the sublayers (from `store.get(path)`, path by path). For a file of the
    older layout (a moved layer's older path present, its current one absent) the store's
    `get` is wrapped to read the older paths instead; files of the current layout, and stores
    that cannot say which paths they hold, are left alone.

    Args:
        model: the `FasterRCNN` being loaded.
        store: the weights store Keras passed to `load_own_variables`.
    """
    if not (hasattr(store, "has_path") and hasattr(store, "get")):
        return
    moved = {
        path: older
        for path, older in older_weight_paths(model).items()
        if store.has_path(older) and not store.has_path(path)
    }
    if not moved:
        return
    get = store.get

    def get_older(path):
        for current, older in moved.items():
            if path == current or path.startswith(current + "/"):
                return get(older + path[len(current):])
        return get(path)

    store.get = get_older
