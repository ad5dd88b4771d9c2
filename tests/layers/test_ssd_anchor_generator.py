import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import SSDAnchorGenerator

# TF OD API ssd_mobilenet_v2_coco: 300x300 input, MobileNetV2 layer_15 + layer_19 + 4 extras.
SSD_MOBILENET_V2_SHAPES = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def _box(cy, cx, h, w):
    return [cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2]


def test_ssd_mobilenet_v2_coco_anchors():
    generator = SSDAnchorGenerator()
    anchors = generator.generate(SSD_MOBILENET_V2_SHAPES, image_height=300, image_width=300)
    assert generator.num_anchors_per_location() == [3, 6, 6, 6, 6, 6]
    assert [a.shape[0] for a in anchors] == [1083, 600, 150, 54, 24, 6]
    assert sum(a.shape[0] for a in anchors) == 1917
    # Scales 0.2 + 0.15 * i: 0.2, 0.35, 0.5, 0.65, 0.8, 0.95 (then 1.0 for interpolation).
    # Layer 0 (19x19) is reduced to (0.1, 1.0), (0.2, 2.0), (0.2, 0.5); strides 1/19, centres
    # (i + 0.5) / 19. First anchor: centre 1/38, 0.1 x 0.1.
    c = 0.5 / 19
    np.testing.assert_allclose(anchors[0][0], _box(c, c, 0.1, 0.1), atol=1e-6)
    # Ratio 2 anchor of scale 0.2: h = 0.2 / sqrt(2), w = 0.2 * sqrt(2); ratio 0.5 swaps them.
    np.testing.assert_allclose(
        anchors[0][1], _box(c, c, 0.2 / math.sqrt(2), 0.2 * math.sqrt(2)), atol=1e-6
    )
    np.testing.assert_allclose(
        anchors[0][2], _box(c, c, 0.2 * math.sqrt(2), 0.2 / math.sqrt(2)), atol=1e-6
    )
    # Last anchor of layer 0: location (18, 18), centre 18.5 / 19, the ratio 0.5 anchor.
    c = 18.5 / 19
    np.testing.assert_allclose(
        anchors[0][-1], _box(c, c, 0.2 * math.sqrt(2), 0.2 / math.sqrt(2)), atol=1e-6
    )
    # Layer 1 (10x10) starts with scale 0.35, ratio 1 at centre 0.05.
    np.testing.assert_allclose(anchors[1][0], _box(0.05, 0.05, 0.35, 0.35), atol=1e-6)
    # Its 6th anchor is the interpolated one: sqrt(0.35 * 0.5), ratio 1.
    s = math.sqrt(0.35 * 0.5)
    np.testing.assert_allclose(anchors[1][5], _box(0.05, 0.05, s, s), atol=1e-6)
    # Last anchor overall: layer 5 (1x1) centre 0.5, interpolated scale sqrt(0.95 * 1.0),
    # ratio 1: 0.5 -/+ 0.48733972 = (0.01266028, 0.98733972).
    s = math.sqrt(0.95)
    np.testing.assert_allclose(anchors[5][-1], _box(0.5, 0.5, s, s), atol=1e-6)
    np.testing.assert_allclose(
        anchors[5][-1], [0.01266028, 0.01266028, 0.98733972, 0.98733972], atol=1e-6
    )
    # The ratio 3 anchor of the last layer: h = 0.95 / sqrt(3), w = 0.95 * sqrt(3).
    np.testing.assert_allclose(
        anchors[5][3], _box(0.5, 0.5, 0.95 / math.sqrt(3), 0.95 * math.sqrt(3)), atol=1e-6
    )


def test_anchor_counts_of_the_original_ssd300_layout():
    # The TF OD API create_ssd_anchors test counts: 38/19/10/5/3/1 maps with 5 aspect ratios.
    shapes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    reduced = SSDAnchorGenerator().generate(shapes, 300, 300)
    assert sum(a.shape[0] for a in reduced) == 7308
    full = SSDAnchorGenerator(reduce_boxes_in_lowest_layer=False)
    assert full.num_anchors_per_location() == [6] * 6
    assert sum(a.shape[0] for a in full.generate(shapes, 300, 300)) == 11640
    no_interpolation = SSDAnchorGenerator(interpolated_scale_aspect_ratio=0.0)
    assert no_interpolation.num_anchors_per_location() == [3, 5, 5, 5, 5, 5]


def test_unit_aspect_anchors_stay_square_on_non_square_images():
    # min(H, W) = 300 rescales the normalized width by 300 / 600: 0.5 x 0.25 normalized is
    # 150 x 150 pixels.
    generator = SSDAnchorGenerator(
        num_layers=1, scales=[0.5], aspect_ratios=(1.0,), interpolated_scale_aspect_ratio=0.0,
        reduce_boxes_in_lowest_layer=False,
    )
    (anchors,) = generator.generate([(1, 1)], image_height=300, image_width=600)
    np.testing.assert_allclose(anchors, [[0.25, 0.375, 0.75, 0.625]], atol=1e-6)


def test_pixel_strides_and_offsets_are_normalized_by_the_image():
    # 2x2 grid, stride 16 px, first centre at 8 px on a 32x64 image: centres y 0.25, 0.75 and
    # x 0.125, 0.375; min side 32 → h = 0.5, w = 0.5 * 32 / 64 = 0.25.
    generator = SSDAnchorGenerator(
        num_layers=1, scales=[0.5], aspect_ratios=(1.0,), interpolated_scale_aspect_ratio=0.0,
        reduce_boxes_in_lowest_layer=False, anchor_strides=[(16, 16)], anchor_offsets=[(8, 8)],
    )
    (anchors,) = generator.generate([(2, 2)], image_height=32, image_width=64)
    expected = [_box(cy, cx, 0.5, 0.25) for cy in (0.25, 0.75) for cx in (0.125, 0.375)]
    np.testing.assert_allclose(anchors, expected, atol=1e-6)


def test_runs_under_tf_function_with_tensor_sizes():
    generator = SSDAnchorGenerator()

    @tf.function
    def generate(size, image_size):
        shapes = [(size, size)] + SSD_MOBILENET_V2_SHAPES[1:]
        return tf.concat(generator.generate(shapes, image_size, image_size), axis=0)

    anchors = generate(tf.constant(19), tf.constant(300))
    expected = tf.concat(generator.generate(SSD_MOBILENET_V2_SHAPES, 300, 300), axis=0)
    assert anchors.shape == (1917, 4)
    np.testing.assert_allclose(anchors, expected, atol=1e-7)


def test_rejects_inconsistent_arguments():
    with pytest.raises(ValueError, match="one scale per layer"):
        SSDAnchorGenerator(num_layers=3, scales=[0.1, 0.2])
    with pytest.raises(ValueError, match="anchor_strides"):
        SSDAnchorGenerator(num_layers=2, anchor_strides=[(16, 16)])
    with pytest.raises(ValueError, match="expects 6 feature map"):
        SSDAnchorGenerator().generate([(19, 19)], 300, 300)


def test_config_round_trip():
    generator = SSDAnchorGenerator(
        num_layers=2, scales=[0.3, 0.6], aspect_ratios=(1.0, 2.0),
        anchor_strides=[(8, 8), (16, 16)], anchor_offsets=[(4, 4), (8, 8)],
        reduce_boxes_in_lowest_layer=False,
    )
    assert SSDAnchorGenerator.from_config(generator.get_config()).get_config() == (
        generator.get_config()
    )
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(generator)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, SSDAnchorGenerator)
    shapes = [(4, 4), (2, 2)]
    for got, expected in zip(restored.generate(shapes, 32, 32), generator.generate(shapes, 32, 32)):
        np.testing.assert_allclose(got, expected)
