"""`KeypointEstimationTask`: one CenterNet keypoint task (TF OD API `keypoint_estimation_task`)."""

import re

import keras

from kdet.losses.penalty_reduced_logistic_focal_loss import PenaltyReducedLogisticFocalLoss
from kdet.losses.weighted_l1_localization_loss import WeightedL1LocalizationLoss
from kdet.models.center_net.center_net_postprocessing import CANDIDATE_RANKING_MODES


@keras.saving.register_keras_serializable(package="kdet")
class KeypointEstimationTask:
    """What a CenterNet learns and predicts for one kind of keypoints (e.g. human pose).

    The model gets three heads per feature map for the task: a heatmap per keypoint type, the
    sub-cell offsets of the peaks, and the vectors from an object's center to its keypoints.
    At inference the keypoints regressed from each detected center are snapped to nearby
    heatmap peaks (see `kdet.models.center_net.center_net_postprocessing.refine_keypoints`).
    The fields are those of the TF OD API `CenterNet.KeypointEstimation` message, with its
    defaults.

    Args:
        task_name: str, unique among the model's tasks; names its heads and losses.
        class_id: int, the label-map id (1-based) of the objects that have these keypoints.
        keypoint_indices: ints, the task's columns of the ground truth's `"keypoints"`
            `[batch, num_boxes, num_keypoints, 2]` (the keypoint ids of the label map), and of
            the predicted `"keypoints"`.
        keypoint_labels: optional strs, the name of each keypoint (e.g. `"nose"`).
        keypoint_std_dev: optional floats, one per keypoint: the heatmap Gaussian of a keypoint
            has its object's box Gaussian's standard deviation times this (the TF OD API
            `keypoint_label_to_std`). Defaults to 1.0 each.
        heatmap_loss: Defaults to `kdet.losses.PenaltyReducedLogisticFocalLoss()`.
        localization_loss: loss of the offsets and regressions. Defaults to
            `kdet.losses.WeightedL1LocalizationLoss()`.
        task_loss_weight, keypoint_heatmap_loss_weight, keypoint_offset_loss_weight,
            keypoint_regression_loss_weight: floats, the losses' weights (all multiplied by
            `task_loss_weight`). Default to 1.0.
        heatmap_bias_init: float, initial bias of the heatmap head. Defaults to `-2.19`.
        keypoint_candidate_score_threshold: float, the heatmap score of a candidate. Defaults
            to `0.1`.
        num_candidates_per_keypoint: int. Defaults to `100`.
        peak_max_pool_kernel_size: int, the max-pool window of the candidates' peaks.
            Defaults to `3`.
        unmatched_keypoint_score: float, the score of a regressed keypoint no candidate
            replaced. Defaults to `0.1`.
        box_scale: float, candidates must lie in the object's box scaled by this. Defaults to
            `1.2`.
        candidate_search_scale: float, and within this times the box's larger side. Defaults
            to `0.3`.
        candidate_ranking_mode: one of `"min_distance"`, `"score_distance_ratio"`,
            `"score_scaled_distance_ratio"`, `"gaussian_weighted"`. Defaults to
            `"min_distance"`.
        score_distance_offset: float (`"score_distance_ratio"`). Defaults to `1.0`.
        score_distance_multiplier: float (`"score_scaled_distance_ratio"`). Defaults to `0.1`.
        std_dev_multiplier: float, multiplies `keypoint_std_dev` for `"gaussian_weighted"`.
            Defaults to `1.0`.
        offset_peak_radius: int, offsets and regressions are also trained at the cells within
            this radius of the peak. Defaults to `0`.
        per_keypoint_offset: bool, one offset pair per keypoint type instead of one shared.
            Defaults to `False`.
        clip_out_of_frame_keypoints: bool, predicted keypoints outside the image are clipped
            to it and scored 0. Defaults to `False`.
        heatmap_head_num_filters, heatmap_head_kernel_sizes, offset_head_num_filters,
            offset_head_kernel_sizes, regress_head_num_filters, regress_head_kernel_sizes:
            the hidden convolutions of the three heads. Default to `(256,)` and `(3,)`.

    Example:
    ```python
    corners = kdet.models.KeypointEstimationTask(
        "corners", class_id=1, keypoint_indices=[0, 1], keypoint_labels=["top_left",
        "bottom_right"])
    model = kdet.CenterNet(1, extractor, keypoint_tasks=[corners])
    ```
    """

    def __init__(
        self,
        task_name,
        class_id,
        keypoint_indices,
        keypoint_labels=None,
        keypoint_std_dev=None,
        heatmap_loss=None,
        localization_loss=None,
        task_loss_weight=1.0,
        keypoint_heatmap_loss_weight=1.0,
        keypoint_offset_loss_weight=1.0,
        keypoint_regression_loss_weight=1.0,
        heatmap_bias_init=-2.19,
        keypoint_candidate_score_threshold=0.1,
        num_candidates_per_keypoint=100,
        peak_max_pool_kernel_size=3,
        unmatched_keypoint_score=0.1,
        box_scale=1.2,
        candidate_search_scale=0.3,
        candidate_ranking_mode="min_distance",
        score_distance_offset=1.0,
        score_distance_multiplier=0.1,
        std_dev_multiplier=1.0,
        offset_peak_radius=0,
        per_keypoint_offset=False,
        clip_out_of_frame_keypoints=False,
        heatmap_head_num_filters=(256,),
        heatmap_head_kernel_sizes=(3,),
        offset_head_num_filters=(256,),
        offset_head_kernel_sizes=(3,),
        regress_head_num_filters=(256,),
        regress_head_kernel_sizes=(3,),
    ):
        self.task_name = str(task_name)
        self.class_id = int(class_id)
        self.keypoint_indices = [int(index) for index in keypoint_indices]
        if not self.keypoint_indices:
            raise ValueError(f"keypoint task {task_name!r}: keypoint_indices is empty")
        if len(set(self.keypoint_indices)) != len(self.keypoint_indices):
            raise ValueError(
                f"keypoint task {task_name!r}: keypoint_indices {self.keypoint_indices} repeat "
                "an index"
            )
        count = len(self.keypoint_indices)
        self.keypoint_labels = None if keypoint_labels is None else list(keypoint_labels)
        std = [1.0] * count if keypoint_std_dev is None else [float(s) for s in keypoint_std_dev]
        for name, values in (("keypoint_labels", self.keypoint_labels), ("keypoint_std_dev", std)):
            if values is not None and len(values) != count:
                raise ValueError(
                    f"keypoint task {task_name!r}: {name} has {len(values)} values, "
                    f"keypoint_indices {count}"
                )
        if candidate_ranking_mode not in CANDIDATE_RANKING_MODES:
            raise ValueError(
                f"keypoint task {task_name!r}: candidate_ranking_mode must be one of "
                f"{CANDIDATE_RANKING_MODES}; got {candidate_ranking_mode!r}"
            )
        self.keypoint_std_dev = std
        self.heatmap_loss = _revive(heatmap_loss) or PenaltyReducedLogisticFocalLoss()
        self.localization_loss = _revive(localization_loss) or WeightedL1LocalizationLoss()
        self.task_loss_weight = task_loss_weight
        self.keypoint_heatmap_loss_weight = keypoint_heatmap_loss_weight
        self.keypoint_offset_loss_weight = keypoint_offset_loss_weight
        self.keypoint_regression_loss_weight = keypoint_regression_loss_weight
        self.heatmap_bias_init = heatmap_bias_init
        self.keypoint_candidate_score_threshold = keypoint_candidate_score_threshold
        self.num_candidates_per_keypoint = int(num_candidates_per_keypoint)
        self.peak_max_pool_kernel_size = int(peak_max_pool_kernel_size)
        self.unmatched_keypoint_score = unmatched_keypoint_score
        self.box_scale = box_scale
        self.candidate_search_scale = candidate_search_scale
        self.candidate_ranking_mode = candidate_ranking_mode
        self.score_distance_offset = score_distance_offset
        self.score_distance_multiplier = score_distance_multiplier
        self.std_dev_multiplier = std_dev_multiplier
        self.offset_peak_radius = int(offset_peak_radius)
        self.per_keypoint_offset = bool(per_keypoint_offset)
        self.clip_out_of_frame_keypoints = bool(clip_out_of_frame_keypoints)
        self.heatmap_head_num_filters = list(heatmap_head_num_filters)
        self.heatmap_head_kernel_sizes = list(heatmap_head_kernel_sizes)
        self.offset_head_num_filters = list(offset_head_num_filters)
        self.offset_head_kernel_sizes = list(offset_head_kernel_sizes)
        self.regress_head_num_filters = list(regress_head_num_filters)
        self.regress_head_kernel_sizes = list(regress_head_kernel_sizes)

    @property
    def num_keypoints(self):
        """Number of keypoint types of the task."""
        return len(self.keypoint_indices)

    def loss_name(self, head):
        """`"<task>_keypoint_<head>_loss"`, the task name made a valid metric name."""
        return f"{re.sub(r'[^0-9A-Za-z_]', '_', self.task_name)}_keypoint_{head}_loss"

    def get_config(self):
        config = {
            name: getattr(self, name)
            for name in (
                "task_name", "class_id", "keypoint_indices", "keypoint_labels",
                "keypoint_std_dev", "task_loss_weight", "keypoint_heatmap_loss_weight",
                "keypoint_offset_loss_weight", "keypoint_regression_loss_weight",
                "heatmap_bias_init", "keypoint_candidate_score_threshold",
                "num_candidates_per_keypoint", "peak_max_pool_kernel_size",
                "unmatched_keypoint_score", "box_scale", "candidate_search_scale",
                "candidate_ranking_mode", "score_distance_offset", "score_distance_multiplier",
                "std_dev_multiplier", "offset_peak_radius", "per_keypoint_offset",
                "clip_out_of_frame_keypoints", "heatmap_head_num_filters",
                "heatmap_head_kernel_sizes", "offset_head_num_filters",
                "offset_head_kernel_sizes", "regress_head_num_filters",
                "regress_head_kernel_sizes",
            )
        }
        config["heatmap_loss"] = keras.saving.serialize_keras_object(self.heatmap_loss)
        config["localization_loss"] = keras.saving.serialize_keras_object(self.localization_loss)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _revive(value):
    """A loss, or it serialized by `keras.saving.serialize_keras_object`, or None."""
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value
