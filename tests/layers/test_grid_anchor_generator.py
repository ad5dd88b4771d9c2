import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import GridAnchorGenerator


def test_faster_rcnn_640_config_first_and_last_anchor():
    # TF OD API faster_rcnn_resnet50_v1_640x640: scales 0.25..2, ratios 0.5..2, base 256,
    # stride 16 → a 40x40 map with 4 * 3 = 12 anchors per location.
    generator = GridAnchorGenerator(scales=(0.25, 0.5, 1.0, 2.0))
    (anchors,) = generator.generate([(40, 40)], image_height=640, image_width=640)
    assert generator.num_anchors_per_location() == [12]
    assert anchors.shape == (40 * 40 * 12, 4)
    assert anchors.dtype == tf.float32
    # First: location (0, 0) centred at offset (0, 0); ratio 0.5 (outer), scale 0.25 (fastest):
    # h = 0.25 * 256 / sqrt(0.5) = 90.50967, w = 0.25 * 256 * sqrt(0.5) = 45.254834 px.
    h, w = 64 / math.sqrt(0.5), 64 * math.sqrt(0.5)
    first = np.array([-h / 2, -w / 2, h / 2, w / 2]) / 640
    # Last: location (39, 39) centred at 39 * 16 = 624 px; ratio 2, scale 2:
    # h = 2 * 256 / sqrt(2) = 362.03867, w = 2 * 256 * sqrt(2) = 724.07734 px.
    h, w = 512 / math.sqrt(2), 512 * math.sqrt(2)
    last = np.array([624 - h / 2, 624 - w / 2, 624 + h / 2, 624 + w / 2]) / 640
    np.testing.assert_allclose(anchors[0], first, atol=1e-6)
    np.testing.assert_allclose(anchors[-1], last, atol=1e-6)


def test_anchors_of_one_location_are_aspect_ratio_major():
    # The TF OD API grid_anchor_generator_test single-location case (pixels): base 256,
    # offset (7, -3); ratio 0.25 & scale 0.5 gives h = 0.5 * 256 / 0.5 = 256,
    # w = 0.5 * 256 * 0.5 = 64 → (7 - 128, -3 - 32, 7 + 128, -3 + 32) = (-121, -35, 135, 29).
    generator = GridAnchorGenerator(
        scales=(0.5, 1.0, 2.0), aspect_ratios=(0.25, 1.0, 4.0), anchor_offset=(7, -3)
    )
    (anchors,) = generator.generate([(1, 1)], image_height=256, image_width=512)
    expected_pixels = [
        [-121, -35, 135, 29],
        [-249, -67, 263, 61],
        [-505, -131, 519, 125],
        [-57, -67, 71, 61],
        [-121, -131, 135, 125],
        [-249, -259, 263, 253],
        [-25, -131, 39, 125],
        [-57, -259, 71, 253],
        [-121, -515, 135, 509],
    ]
    np.testing.assert_allclose(
        anchors, np.array(expected_pixels) / [256, 512, 256, 512], atol=1e-6
    )


def test_locations_are_row_major_over_y_then_x():
    # 2x2 grid, stride 19, base 10, scales (0.5, 1, 2): half sizes 2.5, 5, 10 px around centres
    # (0, 0), (0, 19), (19, 0), (19, 19) in that order.
    generator = GridAnchorGenerator(
        scales=(0.5, 1.0, 2.0), aspect_ratios=(1.0,), base_anchor_size=(10, 10),
        anchor_stride=(19, 19),
    )
    (anchors,) = generator.generate([(2, 2)], image_height=38, image_width=38)
    expected = [
        [cy - half, cx - half, cy + half, cx + half]
        for cy, cx in [(0, 0), (0, 19), (19, 0), (19, 19)]
        for half in (2.5, 5.0, 10.0)
    ]
    np.testing.assert_allclose(anchors * 38.0, expected, atol=1e-5)


def test_runs_under_tf_function_with_tensor_sizes():
    generator = GridAnchorGenerator()

    @tf.function
    def generate(height, width, image_height, image_width):
        return generator.generate([(height, width)], image_height, image_width)

    (anchors,) = generate(tf.constant(3), tf.constant(5), tf.constant(48), tf.constant(80))
    (expected,) = generator.generate([(3, 5)], 48, 80)
    assert anchors.shape == (3 * 5 * 9, 4)
    np.testing.assert_allclose(anchors, expected)


def test_static_shape_with_python_ints_inside_tf_function():
    generator = GridAnchorGenerator()

    @tf.function
    def generate():
        (anchors,) = generator.generate([(3, 5)], 48, 80)
        assert anchors.shape == (135, 4)
        return anchors

    generate()


def test_rejects_a_second_feature_map():
    with pytest.raises(ValueError, match="expects 1 feature map"):
        GridAnchorGenerator().generate([(4, 4), (2, 2)], 64, 64)


def test_config_round_trip():
    generator = GridAnchorGenerator(
        scales=(0.25, 1.0), aspect_ratios=(1.0, 2.0), base_anchor_size=(128, 64),
        anchor_stride=(8, 8), anchor_offset=(4, 4),
    )
    assert GridAnchorGenerator.from_config(generator.get_config()).get_config() == (
        generator.get_config()
    )
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(generator)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, GridAnchorGenerator)
    np.testing.assert_allclose(
        restored.generate([(2, 3)], 16, 24)[0], generator.generate([(2, 3)], 16, 24)[0]
    )
