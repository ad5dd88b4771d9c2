"""A tiny TF OD API pipeline.config with shapes TFRecords, for the config, CLI and evaluation tests.

`write_pipeline(folder, ...)` writes `train.record`, `eval.record` (PNG images, so that pixels
survive the round trip), `label_map.pbtxt` and `pipeline.config` for an SSD with the tiny
extractor of `tiny_ssd_extractor` (imported here to register it).
"""

import kdet
import tiny_ssd_extractor  # noqa: F401  (registers the extractor the config names)
from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord

IMAGE_SIZE = 64
LABEL_MAP = {1: "square", 2: "circle"}

_CONFIG = """
model {
  ssd {
    num_classes: 2
    image_resizer { fixed_shape_resizer { height: 64 width: 64 } }
    feature_extractor { type: "test_tiny_two_map_ssd" }
    box_coder { faster_rcnn_box_coder { } }
    matcher { argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5 } }
    similarity_calculator { iou_similarity { } }
    anchor_generator {
      ssd_anchor_generator { num_layers: 2 min_scale: 0.2 max_scale: 0.6
                             aspect_ratios: 1.0 aspect_ratios: 2.0 aspect_ratios: 0.5 }
    }
    box_predictor {
      convolutional_box_predictor {
        kernel_size: 3
        conv_hyperparams {
          activation: RELU_6
          regularizer { l2_regularizer { weight: 0.00004 } }
          initializer { truncated_normal_initializer { stddev: 0.03 } }
        }
      }
    }
    loss {
      classification_loss { weighted_sigmoid { } }
      localization_loss { weighted_smooth_l1 { } }
    }
    post_processing {
      batch_non_max_suppression { score_threshold: 0.00000001 iou_threshold: 0.6
                                  max_detections_per_class: 20 max_total_detections: 20 }
      score_converter: SIGMOID
    }
  }
}
train_config {
  batch_size: 4
  num_steps: NUM_STEPS
  optimizer {
    momentum_optimizer {
      learning_rate { constant_learning_rate { learning_rate: LEARNING_RATE } }
      momentum_optimizer_value: 0.9
    }
    use_moving_average: false
  }
TRAIN_CONFIG_EXTRA}
train_input_reader {
  tf_record_input_reader { input_path: "FOLDER/train.record" }
  label_map_path: "FOLDER/label_map.pbtxt"
}
EVAL_CONFIG
"""

_EVAL_INPUT_READER = """
eval_input_reader {
  label_map_path: "FOLDER/label_map.pbtxt"
  shuffle: false
  num_epochs: 1
  tf_record_input_reader { input_path: "FOLDER/eval.record" }
}
"""


def shapes_examples(num_images, seed, image_size=IMAGE_SIZE):
    """`(images, y, examples)`: shapes images, their ground truth and PNG tf.train.Examples."""
    images, y = kdet.datasets.shapes(num_images, image_size, num_classes=2, max_boxes=3, seed=seed)
    examples = [
        create_example_from_arrays(image, boxes[labels > 0], labels[labels > 0], LABEL_MAP,
                                   box_format="yxyx", image_format="png")
        for image, boxes, labels in zip(images, y["boxes"], y["labels"])
    ]
    return images, y, examples


def write_pipeline(folder, eval_config="", num_steps=4, eval_input_reader=True,
                   num_eval_images=6, eval_image_size=IMAGE_SIZE, learning_rate=0.00001,
                   train_config_extra=""):
    """Writes the records, label map and config into `folder`; returns the config's path.

    Args:
        folder: `pathlib.Path`, an existing folder.
        eval_config: text placed after the input readers, e.g. `"eval_config { … }"`.
        num_steps: `train_config.num_steps`.
        eval_input_reader: bool, whether the config has an `eval_input_reader`.
        num_eval_images: int, images in `eval.record`.
        eval_image_size: int, the size of the eval images (the model resizes to 64).
        learning_rate: float, the constant learning rate (the default barely moves the
            weights, so evaluations of a trained checkpoint stay meaningful).
        train_config_extra: text placed at the end of `train_config { … }`, e.g.
            `"data_augmentation_options { random_horizontal_flip { } }"`.
    """
    write_tfrecord(shapes_examples(8, seed=3)[2], folder / "train.record")
    write_tfrecord(shapes_examples(num_eval_images, 4, eval_image_size)[2], folder / "eval.record")
    (folder / "label_map.pbtxt").write_text(
        "".join(f"item {{ id: {k} name: '{v}' }}\n" for k, v in LABEL_MAP.items())
    )
    text = _CONFIG.replace("EVAL_CONFIG", eval_config)
    if eval_input_reader:
        text += _EVAL_INPUT_READER
    text = text.replace("NUM_STEPS", str(num_steps)).replace("FOLDER", str(folder))
    text = text.replace("LEARNING_RATE", repr(float(learning_rate)))
    text = text.replace("TRAIN_CONFIG_EXTRA", f"  {train_config_extra}\n" if train_config_extra else "")
    path = folder / "pipeline.config"
    path.write_text(text)
    return path
