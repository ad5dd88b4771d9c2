"""TF OD API eval_config → EvalSettings, and eval_dataset of a whole pipeline.config."""

import numpy as np
import pytest
import tensorflow as tf

import tiny_pipeline
from kdet.configs import ConfigError
from kdet.configs import eval_dataset
from kdet.configs import load_pipeline
from kdet.configs.eval_builder import EvalSettings
from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.text_format import parse

DEFAULTS = EvalSettings(
    metrics_sets=("coco_detection_metrics",),
    batch_size=1,
    num_examples=None,
    max_evals=0,
    eval_interval_secs=None,
    include_metrics_per_category=False,
    num_visualizations=10,
    min_score_threshold=0.5,
    max_num_boxes_to_visualize=20,
)


def _settings(text):
    return build_eval_settings(Node(parse(text, "eval.config"), "eval_config"))


@pytest.mark.parametrize(
    "text, expected",
    [
        # The eval_config blocks of the public TF OD API sample configs.
        ("num_examples: 8000 max_evals: 10 use_moving_averages: false",
         dict(num_examples=8000, max_evals=10)),
        ('metrics_set: "coco_detection_metrics" num_examples: 1101', dict(num_examples=1101)),
        ('metrics_set: "coco_detection_metrics" use_moving_averages: false', {}),
        # embedded_ssd_mobilenet_v1_coco.config, facessd_mobilenet_v2_quantized_…_v4.config.
        ('metrics_set: "coco_detection_metrics" use_moving_averages: true',
         dict(use_moving_averages=True)),
        ('metrics_set: "pascal_voc_detection_metrics" '
         'metrics_set: "weighted_pascal_voc_detection_metrics" batch_size: 8 '
         "include_metrics_per_category: true eval_interval_secs: 60 num_visualizations: 4 "
         "min_score_threshold: 0.3 max_num_boxes_to_visualize: 5 retain_original_images: false "
         "use_dummy_loss_in_eval: true",
         dict(metrics_sets=("pascal_voc_detection_metrics",
                            "weighted_pascal_voc_detection_metrics"),
              batch_size=8, include_metrics_per_category=True, eval_interval_secs=60,
              num_visualizations=4, min_score_threshold=0.3, max_num_boxes_to_visualize=5)),
        ('metrics_set: ["coco_detection_metrics", "pascal_voc_detection_metrics"]',
         dict(metrics_sets=("coco_detection_metrics", "pascal_voc_detection_metrics"))),
    ],
)
def test_sample_eval_configs_load(text, expected):
    assert _settings(text) == EvalSettings(**{**DEFAULTS.__dict__, **expected})


def test_no_eval_config_reads_as_the_tf_od_api_defaults():
    assert build_eval_settings(None) == DEFAULTS


@pytest.mark.parametrize(
    "text, message",
    [
        ("num_exmples: 10",
         r"eval.config:1:1: 'eval_config.num_exmples' is not a field kdet supports "
         r"\(did you mean 'num_examples'\?\)"),
        ("batch_size: 1\nparameterized_metric { coco_keypoint_metrics { } }",
         r"eval.config:2:46: 'eval_config.parameterized_metric.coco_keypoint_metrics' is "
         r"missing the required field 'class_label'"),
        ("keypoint_edge { start: 0 }",
         r"eval.config:1:15: 'eval_config.keypoint_edge' is missing the required field 'end'"),
        ('metrics_set: "coco_detection_metrics"\n  metrics_set: "lvis_mask_metrics"',
         r"eval.config:2:3: 'eval_config.metrics_set': metrics set 'lvis_mask_metrics' is not "
         r"computed by kdet: kdet computes the metrics of instance masks as coco_mask_metrics "
         r"only; kdet supports "
         r"coco_detection_metrics, pascal_voc_detection_metrics, "
         r"weighted_pascal_voc_detection_metrics, oid_V2_detection_metrics, "
         r"oid_challenge_detection_metrics"),
        ("batch_size: 0", r"eval.config:1:1: 'eval_config.batch_size' is 0, but it must be at "
                          r"least 1"),
        ("save_graph: true", r"'eval_config.save_graph' is not a field kdet supports"),
    ],
)
def test_bad_eval_configs_are_errors_at_the_line(text, message):
    with pytest.raises(ConfigError, match=message):
        _settings(text)


def test_load_pipeline_builds_eval_settings(tmp_path):
    path = tiny_pipeline.write_pipeline(
        tmp_path, eval_config='eval_config { metrics_set: "pascal_voc_detection_metrics" '
                              "batch_size: 4 }"
    )
    settings = load_pipeline(path).eval_config
    assert settings.metrics_sets == ("pascal_voc_detection_metrics",)
    assert settings.batch_size == 4
    path.write_text(path.read_text().replace("batch_size: 4 }", "batch_size: 4 max_eval: 1 }"))
    with pytest.raises(ConfigError, match=r"pipeline.config:\d+:\d+: 'eval_config.max_eval' is not "
                                          r"a field kdet supports \(did you mean 'max_evals'\?\)"):
        load_pipeline(path)
    assert load_pipeline(tiny_pipeline.write_pipeline(tmp_path)).eval_config == DEFAULTS


def test_eval_dataset_is_one_pass_in_file_order_resized_and_batched(tmp_path):
    # A reader asking for shuffling and endless epochs still gives one ordered pass.
    path = tiny_pipeline.write_pipeline(
        tmp_path, eval_config="eval_config { batch_size: 3 }", num_eval_images=7,
        eval_image_size=80,
    )
    path.write_text(path.read_text().replace("shuffle: false\n  num_epochs: 1", "shuffle: true"))
    dataset = eval_dataset(load_pipeline(path))
    batches = list(dataset)
    assert [len(images) for images, _ in batches] == [3, 3, 1]
    images = np.concatenate([images for images, _ in batches])
    boxes = np.concatenate([y["boxes"] for _, y in batches])
    labels = np.concatenate([y["labels"] for _, y in batches])
    assert images.shape == (7, 64, 64, 3)

    source_images, source_y, _ = tiny_pipeline.shapes_examples(7, 4, image_size=80)
    for index in range(7):
        real = source_y["labels"][index] > 0
        np.testing.assert_array_equal(labels[index][labels[index] > 0],
                                      source_y["labels"][index][real])
        # Boxes follow the resize from 80 to 64 pixels.
        np.testing.assert_allclose(boxes[index][labels[index] > 0],
                                   source_y["boxes"][index][real] * 64 / 80, atol=1e-4)
    # No augmentation: the pixels are the resized source images.
    resized = tf.image.resize(source_images.astype("float32"), (64, 64))
    np.testing.assert_allclose(images, resized, atol=1e-3)


def test_eval_dataset_needs_an_eval_input_reader(tmp_path):
    pipeline = load_pipeline(tiny_pipeline.write_pipeline(tmp_path, eval_input_reader=False))
    with pytest.raises(ValueError, match=r"pipeline.config: no eval_input_reader; it is needed to "
                                         r"evaluate"):
        eval_dataset(pipeline)
