"""`image_resizer { … }`: every resize method and the pad value of a TF OD API config applied."""

import numpy as np
import pytest
import tensorflow as tf

from kdet.configs.field_reader import Node
from kdet.configs.model_builder.components import build_image_resizer
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse


def _resizer(text):
    return build_image_resizer(Node(parse(text, "r.config"), "image_resizer"))


@pytest.mark.parametrize(
    ("method", "tf1_op"),
    [
        ("BILINEAR", tf.compat.v1.image.resize_bilinear),
        ("NEAREST_NEIGHBOR", tf.compat.v1.image.resize_nearest_neighbor),
        ("BICUBIC", tf.compat.v1.image.resize_bicubic),
        ("AREA", tf.compat.v1.image.resize_area),
    ],
)
def test_resize_methods_are_the_tf1_ops_the_tf_od_api_resizes_with(method, tf1_op):
    resizer = _resizer(f"fixed_shape_resizer {{ height: 7 width: 5 resize_method: {method} }}")
    images = tf.random.stateless_uniform([1, 13, 11, 3], seed=(1, 2), maxval=255.0)
    resized, _ = resizer(images)
    expected = tf1_op(images, [7, 5], align_corners=False)
    np.testing.assert_allclose(resized.numpy(), expected.numpy(), atol=1e-3)
    if method != "BILINEAR":  # the methods differ: the test would catch a wrong mapping
        bilinear = tf.compat.v1.image.resize_bilinear(images, [7, 5])
        assert np.abs(resized.numpy() - bilinear.numpy()).max() > 1.0


def test_per_channel_pad_value_fills_the_padding():
    resizer = _resizer(
        "keep_aspect_ratio_resizer { min_dimension: 8 max_dimension: 16 "
        "pad_to_max_dimension: true per_channel_pad_value: 3 per_channel_pad_value: 4 "
        "per_channel_pad_value: 5 }"
    )
    resized, scale = resizer(tf.fill([1, 10, 20, 3], 100.0))
    # A 10x20 image → 8x16 content at the top left of 16x16 (scale: content / padded).
    assert resized.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(scale.numpy(), [0.5, 1.0])
    np.testing.assert_array_equal(resized[0, :8].numpy(), np.full([8, 16, 3], 100.0))
    np.testing.assert_array_equal(resized[0, 8:].numpy(), np.tile([3.0, 4.0, 5.0], [8, 16, 1]))


def test_grayscale_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="3-channel images"):
        _resizer("fixed_shape_resizer { convert_to_grayscale: true }")
    with pytest.raises(ConfigError, match="per_channel_pad_value"):
        _resizer("keep_aspect_ratio_resizer { per_channel_pad_value: 3 }")
