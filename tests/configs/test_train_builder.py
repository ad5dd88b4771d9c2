"""TF OD API train_config / input readers → optimizer, training settings, reader arguments."""

import pathlib

import keras
import pytest

from kdet.configs.field_reader import Node
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.configs.train_builder import build_input_reader_arguments
from kdet.configs.train_builder import build_training
from kdet.training import CosineDecayWithWarmup
from kdet.training import ExponentialDecayWithBurnin
from kdet.training import FusedAdam
from kdet.training import ManualStepping

SAMPLE_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "data" / "tfod_configs"

# The train_config of the TF OD API ssd_mobilenet_v2_coco sample, written out for this test.
SSD_TRAIN_CONFIG = """
train_config: {
  batch_size: 24
  optimizer {
    rms_prop_optimizer: {
      learning_rate: {
        exponential_decay_learning_rate {
          initial_learning_rate: 0.004
          decay_steps: 800720
          decay_factor: 0.95
        }
      }
      momentum_optimizer_value: 0.9
      decay: 0.9
      epsilon: 1.0
    }
  }
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/model.ckpt"
  fine_tune_checkpoint_type:  "detection"
  num_steps: 200000
  data_augmentation_options {
    random_horizontal_flip {
    }
  }
  data_augmentation_options {
    ssd_random_crop {
    }
  }
}
"""

# A Faster R-CNN pets-style train_config: momentum, manual steps, clipping, no moving average.
FASTER_RCNN_TRAIN_CONFIG = """
train_config: {
  batch_size: 1
  optimizer {
    momentum_optimizer: {
      learning_rate: {
        manual_step_learning_rate {
          initial_learning_rate: 0.0003
          schedule { step: 900000 learning_rate: .00003 }
          schedule { step: 1200000 learning_rate: .000003 }
        }
      }
      momentum_optimizer_value: 0.9
    }
    use_moving_average: false
  }
  gradient_clipping_by_norm: 10.0
  from_detection_checkpoint: true
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/model.ckpt"
  data_augmentation_options { random_adjust_brightness { max_delta: 0.2 } }
}
"""


def _training(text):
    root = parse(text, "pipeline.config")
    return build_training(Node(root.first("train_config"), "train_config"))


def test_ssd_mobilenet_v2_coco_train_config():
    optimizer, settings = _training(SSD_TRAIN_CONFIG)
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert (optimizer.rho, optimizer.momentum, optimizer.epsilon) == (0.9, 0.9, 1.0)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9999
    schedule = optimizer._learning_rate
    assert isinstance(schedule, ExponentialDecayWithBurnin)
    assert (schedule.initial_learning_rate, schedule.decay_steps, schedule.decay_factor) == (
        0.004, 800720, 0.95
    )
    assert schedule.staircase
    assert (settings.batch_size, settings.num_steps) == (24, 200000)
    assert settings.augmentation == [("random_horizontal_flip", {}), ("ssd_random_crop", {})]
    assert settings.fine_tune_checkpoint == "PATH_TO_BE_CONFIGURED/model.ckpt"
    assert settings.fine_tune_checkpoint_type == "detection"
    assert settings.max_number_of_boxes == 100 and not settings.use_bfloat16


def test_faster_rcnn_pets_style_train_config():
    optimizer, settings = _training(FASTER_RCNN_TRAIN_CONFIG)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == 0.9 and not optimizer.use_ema
    assert optimizer.global_clipnorm == 10.0
    schedule = optimizer._learning_rate
    assert isinstance(schedule, ManualStepping)
    assert schedule.boundaries == [900000, 1200000]
    assert schedule.rates == pytest.approx([0.0003, 0.00003, 0.000003])
    assert settings.fine_tune_checkpoint_type == "detection"  # from from_detection_checkpoint
    assert settings.augmentation == [("random_adjust_brightness", {"max_delta": 0.2})]


def test_manual_step_schedule_from_step_zero_of_the_sample_configs():
    # faster_rcnn_resnet101_coco.config (a TF OD API sample), train_config as written.
    config = SAMPLE_CONFIGS / "faster_rcnn_resnet101_coco.config"
    root = parse(config.read_text(), str(config))
    optimizer, _ = build_training(Node(root.first("train_config"), "train_config"))
    schedule = optimizer._learning_rate
    assert schedule.boundaries == [0, 900000, 1200000]
    rates = [float(schedule(step)) for step in (0, 899999, 900000, 1200000)]
    assert rates == pytest.approx([0.0003, 0.0003, 0.00003, 0.000003])
    # An unset step is 0 (optimizer.proto has no default for it): a rate from step 0 on.
    optimizer, _ = _training("""train_config { optimizer { momentum_optimizer { learning_rate {
      manual_step_learning_rate { initial_learning_rate: 5.0 schedule { learning_rate: 0.1 } }
    } } } }""")
    assert float(optimizer._learning_rate(0)) == pytest.approx(0.1)


def test_adam_with_cosine_decay_and_constant_rate():
    optimizer, _ = _training("""train_config { optimizer { adam_optimizer {
        learning_rate { cosine_decay_learning_rate { learning_rate_base: 0.04 total_steps: 1000
          warmup_learning_rate: 0.01 warmup_steps: 100 } }
        epsilon: 1e-6 } } }""")
    assert isinstance(optimizer, FusedAdam) and optimizer.epsilon == 1e-6
    schedule = optimizer._learning_rate
    assert isinstance(schedule, CosineDecayWithWarmup)
    assert (schedule.learning_rate_base, schedule.total_steps, schedule.warmup_steps) == (
        0.04, 1000, 100
    )
    optimizer, _ = _training(
        "train_config { optimizer { momentum_optimizer { learning_rate { "
        "constant_learning_rate { learning_rate: 0.01 } } } } }"
    )
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "text, match",
    [
        ("train_config { batch_sise: 2 optimizer { } }",
         r"pipeline.config:1:16: 'train_config.batch_sise' is not a field kdet supports "
         r"\(did you mean 'batch_size'\?\)"),
        ("train_config {\n  batch_size: 2\n}",
         r"pipeline.config:1:14: 'train_config' is missing the required field 'optimizer'"),
        ("train_config { optimizer { adam_optimizer { learning_rate { constant_learning_rate {} } }"
         "\n momentum_optimizer { learning_rate { constant_learning_rate {} } } } }",
         r"pipeline.config:1:26: 'train_config.optimizer' needs exactly one of .*; got "
         r"momentum_optimizer, adam_optimizer"),
        ("train_config { optimizer { momentum_optimizer { learning_rate {\n"
         "  manual_step_learning_rate { schedule { step: 10 } schedule { step: 5 } } } } } }",
         r"pipeline.config:2:29: .*manual_step_learning_rate.: boundaries must increase"),
        ("train_config { optimizer { momentum_optimizer { learning_rate {\n"
         "  constant_learning_rate {} } } }\n"
         "  data_augmentation_options { random_horizontal_flop { } } }",
         r"pipeline.config:3:31: 'train_config.data_augmentation_options.random_horizontal_flop'"
         r": .*random_horizontal_flip"),
        ("train_config { optimizer { momentum_optimizer { learning_rate {\n"
         "  constant_learning_rate {} } } }\n"
         "  data_augmentation_options { random_adjust_brightness { max_delta: 0.2 delta: 1 } } }",
         r"pipeline.config:3:73: .*random_adjust_brightness.delta' is not a field kdet supports "
         r"\(did you mean 'max_delta'\?\)"),
        ("train_config { fine_tune_checkpoint_type: 'segmentation' optimizer {\n"
         "  momentum_optimizer { learning_rate { constant_learning_rate {} } } } }",
         r"pipeline.config:1:16: .*'segmentation'; kdet supports 'classification', "
         r"'detection', 'fine_tune', 'full'"),
        ("train_config { add_regularization_loss: false optimizer {\n"
         "  momentum_optimizer { learning_rate { constant_learning_rate {} } } } }",
         r"pipeline.config:1:16: 'train_config.add_regularization_loss' is false, but kdet uses "
         r"true"),
    ],
)
def test_errors_name_the_line_column_and_field(text, match):
    with pytest.raises(ConfigError, match=match):
        _training(text)


def test_sync_replicas_is_ignored_with_a_notice():
    with pytest.warns(UserWarning, match="train_config.sync_replicas is ignored"):
        _training("train_config { sync_replicas: true optimizer { momentum_optimizer { "
                  "learning_rate { constant_learning_rate {} } } } }")


def _reader(text):
    root = parse(text, "pipeline.config")
    node = Node(root.first("train_input_reader"), "train_input_reader")
    return build_input_reader_arguments(node)


def test_input_reader_arguments_for_read_tfrecords():
    arguments = _reader("""train_input_reader: {
      tf_record_input_reader { input_path: "data/train-*.record" input_path: "more.record" }
      label_map_path: "data/label_map.pbtxt"
      shuffle_buffer_size: 64
      num_readers: 2
      sample_1_of_n_examples: 3
      max_number_of_boxes: 50
    }""")
    assert arguments == {
        "input_paths": ["data/train-*.record", "more.record"],
        "label_map": "data/label_map.pbtxt",
        "shuffle": True,
        "shuffle_buffer_size": 64,
        "filenames_shuffle_buffer_size": 100,
        "num_epochs": 0,
        "num_readers": 2,
        "read_block_length": 32,
        "sample_1_of_n_examples": 3,
        "num_parallel_calls": 8,
        "num_prefetch_batches": 2,
        "max_num_boxes": 50,
        "num_keypoints": 0,
        "load_instance_masks": False,
        "mask_type": "numerical",
        "load_context_features": False,
        "input_type": "tf_example",
    }


@pytest.mark.parametrize(
    "text, match",
    [
        ("train_input_reader { label_map_path: 'x' }",
         r"pipeline.config:1:20: 'train_input_reader' is missing the required field "
         r"'tf_record_input_reader'"),
        ("train_input_reader { tf_record_input_reader { } }",
         r"'train_input_reader.tf_record_input_reader' is missing the required field "
         r"'input_path'"),
    ],
)
def test_input_reader_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        _reader(text)
