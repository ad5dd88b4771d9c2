"""`center_net { … }` configs → `kdet.CenterNet`: fields applied, keypoint tasks from the label
map, and clear errors for what kdet's CenterNet does not do."""

import pytest

import kdet
from kdet.configs.model_builder import build_model_from_text
from kdet.configs.text_format import ConfigError
from kdet.losses import PenaltyReducedLogisticFocalLoss
from kdet.losses import WeightedSmoothL1LocalizationLoss

LABEL_MAP = """
item { id: 1 name: 'dog' }
item {
  id: 2 name: 'person'
  keypoints { id: 0 label: 'nose' }
  keypoints { id: 1 label: 'left_eye' }
  keypoints { id: 2 label: 'right_eye' }
}
"""


def config(label_map, center_net_fields="", task_fields="", extractor="mobilenet_v2_fpn"):
    return f"""
model {{
  center_net {{
    num_classes: 2
    feature_extractor {{
      type: "{extractor}"
      depth_multiplier: 0.25
      channel_means: [123.0, 117.0, 104.0]
      channel_stds: [58.0, 57.0, 57.0]
    }}
    image_resizer {{ fixed_shape_resizer {{ height: 64 width: 64 }} }}
    object_detection_task {{
      scale_loss_weight: 0.2
      localization_loss {{ weighted_smooth_l1 {{ }} }}
      scale_head_params {{ num_filters: [32] kernel_sizes: [3] }}
    }}
    object_center_params {{
      object_center_loss_weight: 2.0
      min_box_overlap_iou: 0.5
      max_box_predictions: 20
      classification_loss {{ penalty_reduced_logistic_focal_loss {{ alpha: 2.0 beta: 3.0 }} }}
    }}
    keypoint_label_map_path: "{label_map}"
    keypoint_estimation_task {{
      task_name: "human_pose"
      keypoint_class_name: "person"
      keypoint_label_to_std {{ key: "nose" value: 0.5 }}
      keypoint_regression_loss_weight: 0.1
      offset_peak_radius: 2
      per_keypoint_offset: true
      heatmap_head_params {{ num_filters: [16] kernel_sizes: [1] }}
      {task_fields}
    }}
    {center_net_fields}
  }}
}}
"""


@pytest.fixture(scope="module")
def label_map(tmp_path_factory):
    path = tmp_path_factory.mktemp("center_net") / "label_map.pbtxt"
    path.write_text(LABEL_MAP)
    return path


def test_fields_reach_the_model(label_map):
    model = build_model_from_text(config(label_map))
    assert isinstance(model, kdet.CenterNet)
    assert model.num_classes == 2 and model.max_box_predictions == 20
    assert model.object_center_loss_weight == 2.0 and model.min_box_overlap_iou == 0.5
    assert model.scale_loss_weight == pytest.approx(0.2)
    assert isinstance(model.center_loss, PenaltyReducedLogisticFocalLoss)
    assert model.center_loss.beta == 3.0
    assert isinstance(model.localization_loss, WeightedSmoothL1LocalizationLoss)
    assert model.scale_head_num_filters == [32] and model.offset_head_num_filters == [256]
    assert model.feature_extractor.channel_means == (123.0, 117.0, 104.0)
    (task,) = model.keypoint_tasks
    assert (task.task_name, task.class_id, task.keypoint_indices) == ("human_pose", 2, [0, 1, 2])
    assert task.keypoint_labels == ["nose", "left_eye", "right_eye"]
    assert task.keypoint_std_dev == [0.5, 1.0, 1.0]
    assert task.keypoint_regression_loss_weight == pytest.approx(0.1)
    assert (task.offset_peak_radius, task.per_keypoint_offset) == (2, True)
    assert task.heatmap_head_kernel_sizes == [1] and task.regress_head_num_filters == [256]


@pytest.mark.parametrize(
    "center_net_fields, task_fields, message",
    [
        ("post_processing { }", "", "'model.center_net.post_processing': non-max suppression"),
        ("", "rescore_instances: true", "rescoring detections by their keypoints"),
        ("", "predict_depth: true", "keypoint depth"),
        ("", "keypoint_label_to_std { key: 'tail' value: 1.0 }", "'tail', not a keypoint label"),
        ("", "candidate_ranking_mode: 'gaussian_weighted_const'", "gaussian_weighted_const"),
    ],
)
def test_what_kdet_does_not_do_is_refused_at_its_field(label_map, center_net_fields,
                                                        task_fields, message):
    with pytest.raises(ConfigError, match=message):
        build_model_from_text(config(label_map, center_net_fields, task_fields))


def test_keypoint_label_map_errors(label_map, tmp_path):
    with pytest.raises(ConfigError, match="keypoint_label_map_path': no file"):
        build_model_from_text(config(tmp_path / "missing.pbtxt"))
    text = config(label_map).replace('keypoint_class_name: "person"', 'keypoint_class_name: "dog"')
    with pytest.raises(ConfigError, match=r"no item of that name with keypoints.*\['person'\]"):
        build_model_from_text(text)


def test_deepmac_beside_a_keypoint_task_is_refused(label_map):
    # The TF OD API's DeepMAC drops keypoint tasks silently; kdet says so.
    text = config(label_map, "deepmac_mask_estimation { dim: 8 }")
    with pytest.raises(ConfigError, match="keypoint_estimation_task' with deepmac_mask_estimation"):
        build_model_from_text(text)
