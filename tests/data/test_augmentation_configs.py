"""`data_augmentation_options` of TF OD API configs → kdet augmentation: every block of the
115 sample configs reads and runs, errors point at the config line."""

import inspect
import pathlib

import pytest
import tensorflow as tf

from kdet.configs.field_reader import Node
from kdet.configs.preprocessor_builder import STEP_SCHEMAS
from kdet.configs.preprocessor_builder import read_augmentation_step
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.configs.text_format import parse_file
from kdet.data.augmentation import AUGMENTATION_OPS
from kdet.data.augmentation import REFUSED_STEPS
from kdet.data.augmentation import build_augmentation

CONFIGS = pathlib.Path(__file__).parent / "tfod_configs"
PATH = "train_config.data_augmentation_options"

# The `PreprocessingStep` oneof of the newest TF OD API `preprocessor.proto` (tensorflow/models
# master; the copy in ../shared/tfod_configs/protos predates the last ten).
PROTO_STEPS = (
    "normalize_image random_horizontal_flip random_pixel_value_scale random_image_scale "
    "random_rgb_to_gray random_adjust_brightness random_adjust_contrast random_adjust_hue "
    "random_adjust_saturation random_distort_color random_jitter_boxes random_crop_image "
    "random_pad_image random_crop_pad_image random_crop_to_aspect_ratio random_black_patches "
    "random_resize_method scale_boxes_to_pixel_coordinates resize_image subtract_channel_mean "
    "ssd_random_crop ssd_random_crop_pad ssd_random_crop_fixed_aspect_ratio "
    "ssd_random_crop_pad_fixed_aspect_ratio random_vertical_flip random_rotation90 rgb_to_gray "
    "convert_class_logits_to_softmax random_absolute_pad_image random_self_concat_image "
    "autoaugment_image drop_label_probabilistically remap_labels random_jpeg_quality "
    "random_downscale_to_target_pixels random_patch_gaussian random_square_crop_by_scale "
    "random_scale_crop_and_pad_to_square adjust_gamma"
).split()


def steps_of(message):
    return [
        read_augmentation_step(Node(field.value, PATH))
        for field in message.get("data_augmentation_options")
    ]


def test_every_sample_config_block_reads_and_runs():
    steps = steps_of(parse_file(CONFIGS / "data_augmentation_options.txt"))
    assert len(steps) == 22  # the distinct blocks of the 115 sample configs
    names = {name for name, _ in steps}
    assert {
        "random_square_crop_by_scale",
        "random_absolute_pad_image",
        "ssd_random_crop_fixed_aspect_ratio",
        "random_scale_crop_and_pad_to_square",
    } <= names
    assert (
        "random_absolute_pad_image",
        {"max_height_padding": 200, "max_width_padding": 200, "pad_color": [0.0, 0.0, 0.0]},
    ) in steps
    assert ("random_horizontal_flip", {"keypoint_flip_permutation": [1, 0, 2, 3, 5, 4]}) in steps
    image = tf.fill([24, 32, 3], tf.constant(90, tf.uint8))
    boxes, labels = tf.constant([[0.2, 0.2, 0.8, 0.7]]), tf.constant([1])
    for name, params in steps:
        # build_augmentation has traced the step in graph mode already; run it once too.
        out_image, out_boxes, out_labels = build_augmentation([(name, params)])(
            image, boxes, labels, seed=(1, 2)
        )
        assert out_image.dtype == tf.uint8 and out_boxes.shape[0] == out_labels.shape[0], name


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.config")), ids=lambda path: path.name)
def test_config_copies_in_tests_read_their_augmentation(path):
    train_config = parse_file(path).first("train_config")
    for name, _ in steps_of(train_config):
        assert name in AUGMENTATION_OPS


def test_every_proto_step_is_implemented_or_refused_with_a_reason():
    assert set(STEP_SCHEMAS) | set(REFUSED_STEPS) == set(PROTO_STEPS)
    assert not set(STEP_SCHEMAS) & set(REFUSED_STEPS)
    assert set(STEP_SCHEMAS) == set(AUGMENTATION_OPS)
    for name, schema in STEP_SCHEMAS.items():
        parameters = inspect.signature(AUGMENTATION_OPS[name]).parameters
        assert set(schema) <= set(parameters), name


def read_one(text):
    message = parse(f"data_augmentation_options {{ {text} }}", "pipeline.config")
    return steps_of(message)[0]


def test_ssd_operations_read_with_proto_defaults():
    name, params = read_one(
        "ssd_random_crop_pad { operations { min_object_covered: 0.5 min_aspect_ratio: 0.5\n"
        " max_aspect_ratio: 2 min_area: 0.1 max_area: 1 overlap_thresh: 0.5 random_coef: 0.1\n"
        " pad_color_r: 10 min_padded_size_ratio: [1.0, 1.0] max_padded_size_ratio: [1.5, 1.5] } }"
    )
    assert name == "ssd_random_crop_pad"
    assert params["operations"] == [
        {
            "min_object_covered": 0.5,
            "min_aspect_ratio": 0.5,
            "max_aspect_ratio": 2.0,
            "min_area": 0.1,
            "max_area": 1.0,
            "overlap_thresh": 0.5,
            "clip_boxes": True,
            "random_coef": 0.1,
            "min_padded_size_ratio": [1.0, 1.0],
            "max_padded_size_ratio": [1.5, 1.5],
            "pad_color_r": 10.0,
            "pad_color_g": 0.0,
            "pad_color_b": 0.0,
        }
    ]
    name, params = read_one("random_jitter_boxes { jitter_mode: SHRINK }")
    assert params == {"jitter_mode": "SHRINK"} and type(params["jitter_mode"]) is str


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "normalize_image { original_minval: 0 original_maxval: 255 }",
            r"pipeline.config:1:29: '.*normalize_image': kdet does not support this step: kdet "
            r"models normalize raw 0..255 images",
        ),
        ("rgb_to_gray { }", r"pipeline.config:1:29: .*random_rgb_to_gray \{ probability: 1.0 \}"),
        (
            "random_sqare_crop_by_scale { }",
            r"pipeline.config:1:29: .*did you mean 'random_square_crop_by_scale'",
        ),
        (
            "random_square_crop_by_scale { scale_mn: 0.5 }",
            r"pipeline.config:1:59: .*scale_mn' is not a field kdet supports",
        ),
        (
            "random_jitter_boxes { jitter_mode: WOBBLE }",
            r"pipeline.config:1:51: .*jitter_mode' expects one of DEFAULT",
        ),
        # An operation without an area range means max_area 0 to the TF OD API: refused.
        (
            "ssd_random_crop { operations { min_aspect_ratio: 0.5 max_aspect_ratio: 2 } }",
            r"pipeline.config:1:29: .*ssd_random_crop': .*max_area > 0",
        ),
        (
            "resize_image { new_height: 10 }",
            r"pipeline.config:1:29: .*new_height and new_width must be set",
        ),
        (
            "drop_label_probabilistically { drop_probability: 0.5 }",
            r"pipeline.config:1:58: .*missing the required field 'label'",
        ),
    ],
)
def test_errors_point_at_the_config_line(text, match):
    with pytest.raises(ConfigError, match=match):
        read_one(text)


def test_sample_config_steps_feed_read_tfrecords(tmp_path):
    # The CenterNet samples' chain, plus steps that change the number of boxes and the labels.
    from test_input_pipeline import write_shards

    from kdet.data.input_pipeline import read_tfrecords

    message = parse(
        """
        data_augmentation_options { random_horizontal_flip { } }
        data_augmentation_options { random_square_crop_by_scale { scale_min: 0.6 scale_max: 1.3 } }
        data_augmentation_options { random_absolute_pad_image {
          max_height_padding: 20 max_width_padding: 20 pad_color: [0, 0, 0] } }
        data_augmentation_options { random_self_concat_image {
          concat_vertical_probability: 1.0 concat_horizontal_probability: 0.0 } }
        data_augmentation_options { remap_labels { original_labels: [2, 3] new_label: 1 } }
        """,
        "pipeline.config",
    )
    dataset = read_tfrecords(
        write_shards(tmp_path, num_shards=1, per_shard=4),
        batch_size=4,
        image_size=(40, 40),
        max_num_boxes=10,
        shuffle=False,
        augmentation=steps_of(message),
        seed=3,
        bounding_box_format="rel_yxyx",
    )
    images, y = next(iter(dataset))
    assert images.shape == (4, 40, 40, 3)
    labels = y["labels"].numpy()
    assert set(labels[labels >= 0].tolist()) <= {1}
    # Record k holds k % 4 boxes before augmentation; self-concatenation at most doubles them.
    assert (labels >= 0).sum(axis=1).max() <= 6
