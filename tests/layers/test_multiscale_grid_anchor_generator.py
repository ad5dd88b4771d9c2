import json
import math

import keras
import numpy as np
import tensorflow as tf

from kdet.layers import MultiscaleGridAnchorGenerator

# TF OD API ssd_resnet50_v1_fpn_640x640 (RetinaNet50): levels 3..7 on a 640x640 input.
RETINANET_640_SHAPES = [(80, 80), (40, 40), (20, 20), (10, 10), (5, 5)]


def test_retinanet_640_config_first_and_last_anchor():
    generator = MultiscaleGridAnchorGenerator()
    anchors = generator.generate(RETINANET_640_SHAPES, image_height=640, image_width=640)
    assert generator.num_anchors_per_location() == [6] * 5
    assert [a.shape[0] for a in anchors] == [38400, 9600, 2400, 600, 150]
    # First: level 3, stride 8, 640 % 8 == 0 so centres start at 4 px; ratio 1, scale 2**0,
    # base 4 * 8 = 32 px: (4 - 16, 4 - 16, 4 + 16, 4 + 16) / 640.
    np.testing.assert_allclose(anchors[0][0], np.array([-12, -12, 20, 20]) / 640, atol=1e-7)
    # Last: level 7, stride 128, 640 % 128 == 0 → offset 64; location (4, 4) centre
    # 64 + 4 * 128 = 576 px; ratio 0.5, scale 2**0.5, base 512:
    # h = 2**0.5 * 512 / sqrt(0.5) = 1024, w = 2**0.5 * 512 * sqrt(0.5) = 512.
    expected = np.array([576 - 512, 576 - 256, 576 + 512, 576 + 256]) / 640
    np.testing.assert_allclose(anchors[-1][-1], expected, atol=1e-6)
    np.testing.assert_allclose(anchors[-1][-1], [0.1, 0.5, 1.7, 1.3], atol=1e-6)


def test_anchors_of_one_location_are_aspect_ratio_major():
    # TF OD API multiscale test, level 6 (stride 64, base 256 px), 1x1 map on a 64x64 image
    # (offset 32): ratio 1 scales 1 and sqrt(2), then ratio 2 scales 1 and sqrt(2).
    generator = MultiscaleGridAnchorGenerator(
        min_level=6, max_level=6, aspect_ratios=(1.0, 2.0), normalize_coordinates=False
    )
    (anchors,) = generator.generate([(1, 1)], image_height=64, image_width=64)
    expected = []
    for ratio in (1.0, 2.0):
        for scale in (1.0, math.sqrt(2)):
            h, w = 256 * scale / math.sqrt(ratio), 256 * scale * math.sqrt(ratio)
            expected.append([32 - h / 2, 32 - w / 2, 32 + h / 2, 32 + w / 2])
    np.testing.assert_allclose(anchors, expected, atol=1e-4)
    # The pixel values printed in the TF OD API test.
    np.testing.assert_allclose(anchors[2], [-58.50967, -149.0193, 122.50967, 213.0193], atol=1e-4)


def test_no_offset_when_the_image_side_is_not_a_multiple_of_the_stride():
    # Level 5 (stride 32) on 65 px: no half-stride offset, centres at 0, 32, 64; base 128 px.
    generator = MultiscaleGridAnchorGenerator(
        min_level=5, max_level=5, aspect_ratios=(1.0,), scales_per_octave=1,
        normalize_coordinates=False,
    )
    (anchors,) = generator.generate([(3, 3)], image_height=65, image_width=65)
    expected = [[cy - 64, cx - 64, cy + 64, cx + 64] for cy in (0, 32, 64) for cx in (0, 32, 64)]
    np.testing.assert_allclose(anchors, expected, atol=1e-5)


def test_normalized_anchors_on_a_non_square_image():
    # Level 5 on 64x128: offset 16 both ways, base 128 px → pixel boxes / (64, 128).
    generator = MultiscaleGridAnchorGenerator(
        min_level=5, max_level=5, aspect_ratios=(1.0,), scales_per_octave=1
    )
    (anchors,) = generator.generate([(2, 2)], image_height=64, image_width=128)
    pixels = [[-48, -48, 80, 80], [-48, -16, 80, 112], [-16, -48, 112, 80], [-16, -16, 112, 112]]
    np.testing.assert_allclose(anchors, np.array(pixels) / [64, 128, 64, 128], atol=1e-6)


def test_runs_under_tf_function_and_tensor_sizes_match_ints():
    generator = MultiscaleGridAnchorGenerator(min_level=3, max_level=4)

    @tf.function
    def generate(image_height, image_width):
        return generator.generate([(8, 6), (4, 3)], image_height, image_width)

    anchors = generate(tf.constant(64), tf.constant(44))
    for got, expected in zip(anchors, generator.generate([(8, 6), (4, 3)], 64, 44)):
        np.testing.assert_allclose(got, expected, atol=1e-7)
    # 64 is a multiple of stride 8 (centre y 4 px), 44 is not (centre x 0 px); base 32 px.
    np.testing.assert_allclose(
        anchors[0][0], np.array([4 - 16, -16, 4 + 16, 16]) / [64, 44, 64, 44], atol=1e-7
    )


def test_config_round_trip():
    generator = MultiscaleGridAnchorGenerator(
        min_level=2, max_level=5, anchor_scale=3.0, aspect_ratios=(1.0,), scales_per_octave=3,
        normalize_coordinates=False,
    )
    assert MultiscaleGridAnchorGenerator.from_config(generator.get_config()).get_config() == (
        generator.get_config()
    )
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(generator)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, MultiscaleGridAnchorGenerator)
    assert restored.num_anchors_per_location() == [3, 3, 3, 3]
