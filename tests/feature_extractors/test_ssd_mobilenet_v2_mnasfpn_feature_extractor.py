"""SSD MobileNetV2 MnasFPN: the TF OD API's layout, it learns, saves, and checks its inputs."""

import keras
import pytest
import tensorflow as tf
from extractor_battery import assert_keras_round_trip
from extractor_battery import assert_ssd_extractor_learns
from extractor_battery import tiny_ssd

from kdet.feature_extractors import MnasFPN
from kdet.feature_extractors import SSDMobileNetV2MnasFPNFeatureExtractor
from kdet.feature_extractors import get_feature_extractor_class
from kdet.feature_extractors.mnasfpn import MNASFPN_CELL
from kdet.layers import MultiscaleGridAnchorGenerator
from kdet.models.ssd import WeightSharedConvolutionalBoxPredictor

# MnasFPN needs image sides that are multiples of 64 (the battery's default is 96).
IMAGE_SIZE = 64


def _tiny(**kwargs):
    return SSDMobileNetV2MnasFPNFeatureExtractor(
        **{"depth_multiplier": 0.25, "min_depth": 8, **kwargs}
    )


def _sizes_and_parameters(extractor, size):
    maps = extractor(tf.zeros([1, size, size, 3]))
    return (
        [tuple(feature.shape) for feature in maps],
        sum(int(keras.ops.size(weight)) for weight in extractor.trainable_weights),
        sum(int(keras.ops.size(weight)) for weight in extractor.weights),
        len(extractor.weights),
    )


def test_layout_is_the_tf_od_apis():
    # Measured on the TF OD API's TF1 SSDMobileNetV2MnasFPNFeatureExtractor at 128x128 (its
    # map shapes, trainable / all parameters, number of variables), with and without
    # use_explicit_padding. (At depth multiplier 1, min_depth 16, 320x320 both give maps of
    # 40, 20, 10, 5 pixels and 48 channels, 2379360 / 2424704 parameters, 580 variables.)
    assert _sizes_and_parameters(_tiny(), 128) == (
        [(1, 16, 16, 16), (1, 8, 8, 16), (1, 4, 4, 16), (1, 2, 2, 16)], 186400, 198112, 580
    )


def test_learns():
    # The sample config's head (multiscale anchors, weight-shared depthwise predictor), one
    # cell. Measured: loss 18.8 -> 0.33, mAP@0.5 0.84 (0.46 after 100 steps; the battery's
    # SSD head: 0.26).
    # Seeded before the extractor is built: its initial weights decide the result.
    keras.utils.set_random_seed(0)
    extractor = _tiny(num_cells=1)
    assert_ssd_extractor_learns(
        extractor, image_size=IMAGE_SIZE, learning_rate=1e-2,
        anchor_generator=MultiscaleGridAnchorGenerator(3, 6, anchor_scale=3.0,
                                                       scales_per_octave=1),
        box_predictor=WeightSharedConvolutionalBoxPredictor(
            num_classes=1, num_anchors_per_location=3, depth=16,
            num_layers_before_predictor=1, use_depthwise=True,
        ),
    )


def test_explicit_padding_round_trips(tmp_path):
    extractor = _tiny(use_explicit_padding=True, pad_to_multiple=64, num_cells=1)
    model = tiny_ssd(extractor, image_size=IMAGE_SIZE)
    loaded = assert_keras_round_trip(model, tmp_path, image_size=IMAGE_SIZE)
    assert loaded.feature_extractor.get_config() == extractor.get_config()


def test_registered_under_the_tf1_name():
    assert get_feature_extractor_class("ssd_mobilenet_v2_mnasfpn") is (
        SSDMobileNetV2MnasFPNFeatureExtractor
    )


def test_image_sides_must_be_multiples_of_64_unless_padded():
    images = tf.zeros([1, 96, 96, 3])
    with pytest.raises(ValueError, match="multiples of 64 .set pad_to_multiple: 64"):
        _tiny(num_cells=1)(images)
    padded = _tiny(pad_to_multiple=64, num_cells=1)
    assert [f.shape[1] for f in padded(images)] == [16, 8, 4, 2]


def test_levels_other_than_3_to_6_are_rejected():
    with pytest.raises(ValueError, match="min_level and max_level must be 3 and 6"):
        _tiny(fpn_max_level=7)


def test_cell_residuals_only_where_shapes_agree():
    # With depth 8 and inputs of 8, 16, 8 channels the level-3 and level-5 outputs add their
    # cell inputs, the level-4 one cannot; C6 (8 channels too) always does.
    head = MnasFPN(min_depth=8, additional_layer_depth=8, num_cells=1)
    inputs = [tf.random.normal([1, 8, 8, 8]), tf.random.normal([1, 4, 4, 16]),
              tf.random.normal([1, 2, 2, 8])]
    outputs = head(inputs)
    blocks = head.blocks[0]
    c6 = head.c6_conv(head.c6_downsample(inputs[2]))
    maps = [*inputs, c6]
    for block, (block_inputs, *_) in zip(blocks, MNASFPN_CELL, strict=True):
        maps.append(block([maps[index] for index in block_inputs]))
    expected = [maps[5] + maps[0], maps[6], maps[7] + maps[2], maps[8] + maps[3]]
    for output, want in zip(outputs, expected, strict=True):
        assert output.shape == want.shape
        assert float(tf.reduce_max(tf.abs(output - want))) < 1e-5


def test_a_cell_reading_a_block_not_made_yet_is_rejected():
    cell = [((0, 5), 4, 3, 8), *MNASFPN_CELL[1:]]
    with pytest.raises(ValueError, match=r"block 0 reads \[0, 5\], but only maps 0..3"):
        MnasFPN(cell=cell)
