import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors.fpn import FeaturePyramid
from kdet.feature_extractors.fpn import backbone_endpoints

BATCH_NORM_SCALE = 1.0 / np.sqrt(1.0 + 1e-3)  # inference batch norm with fresh statistics


def _backbone_maps(sizes=(16, 8, 4), channels=(4, 6, 8), batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [
        tf.constant(rng.normal(size=(batch, s, s, c)), tf.float32)
        for s, c in zip(sizes, channels)
    ]


def _set_identity_weights(pyramid):
    """1x1 projections copy channel 0 and 3x3 convolutions pass through their centre tap."""
    for layer in pyramid.lateral_convs:
        kernel = np.zeros(layer.kernel.shape, np.float32)
        kernel[0, 0, 0, 0] = 1.0
        layer.kernel.assign(kernel)
    for block in pyramid.smoothing_blocks + pyramid.extra_blocks:
        conv = next(layer for layer in block.layers if isinstance(layer, keras.layers.Conv2D))
        kernel = np.zeros(conv.kernel.shape, np.float32)
        kernel[1, 1, 0, 0] = 1.0
        conv.kernel.assign(kernel)


def test_levels_3_to_7_from_three_backbone_maps():
    pyramid = FeaturePyramid(min_level=3, max_level=7, depth=16)
    outputs = pyramid(_backbone_maps())
    assert [tuple(o.shape) for o in outputs] == [
        (2, 16, 16, 16), (2, 8, 8, 16), (2, 4, 4, 16), (2, 2, 2, 16), (2, 1, 1, 16),
    ]
    assert len(pyramid.lateral_convs) == 3
    assert len(pyramid.smoothing_blocks) == 2
    assert len(pyramid.extra_blocks) == 2


def test_top_down_math_pinned_by_hand():
    # depth 1, identity weights: P5 = C5 (projection only: no batch norm, no activation);
    # P4 = relu6(bn(up(P5) + C4)); P3 = relu6(bn(up(P4) + C3)), built on the *smoothed* P4
    # (the TF OD API Keras FPN); P6 = relu6(bn(conv_s2(P5))).
    c3 = np.zeros((1, 4, 4, 1), np.float32)
    c3[0, 0, 0, 0] = 1.0
    c4 = np.array([[-1.0, 2.0], [3.0, 0.5]], np.float32).reshape(1, 2, 2, 1)
    c5 = np.array([[-7.0]], np.float32).reshape(1, 1, 1, 1)
    c5_big = np.array([[10.0]], np.float32).reshape(1, 1, 1, 1)
    pyramid = FeaturePyramid(min_level=3, max_level=6, depth=1)
    pyramid([c3, c4, c5])
    _set_identity_weights(pyramid)

    p3, p4, p5, p6 = [o.numpy()[0, ..., 0] for o in pyramid([c3, c4, c5], training=False)]
    np.testing.assert_allclose(p5, [[-7.0]])
    expected_p4 = np.clip((c4[0, ..., 0] - 7.0) * BATCH_NORM_SCALE, 0.0, 6.0)
    np.testing.assert_allclose(p4, expected_p4, atol=1e-6)  # all zero: relu of negatives
    expected_p3 = np.clip((np.repeat(np.repeat(expected_p4, 2, 0), 2, 1) + c3[0, ..., 0])
                          * BATCH_NORM_SCALE, 0.0, 6.0)
    np.testing.assert_allclose(p3, expected_p3, atol=1e-6)
    np.testing.assert_allclose(p6, [[0.0]])

    p3, p4, p5, p6 = [o.numpy()[0, ..., 0] for o in pyramid([c3, c4, c5_big], training=False)]
    np.testing.assert_allclose(p5, [[10.0]])
    # 10 + c4 >= 9 clips to 6 everywhere: P3 is built on that 6, not on the unsmoothed 10 + c4.
    np.testing.assert_allclose(p4, np.full((2, 2), 6.0), atol=1e-6)
    expected_p3 = np.clip((6.0 + c3[0, ..., 0]) * BATCH_NORM_SCALE, 0.0, 6.0)
    np.testing.assert_allclose(p3, expected_p3, atol=1e-6)
    assert p3[0, 1] == pytest.approx(6.0 * BATCH_NORM_SCALE)
    np.testing.assert_allclose(p6, [[6.0]], atol=1e-6)


def test_slim_layout_carries_the_unsmoothed_sum_down():
    # The TF OD API's TF1 FPN: P3 = relu6(bn(up(C5 + C4) + C3)), built on the sum that P4
    # smooths, not on P4. With C5 = 10 that sum is 10 + c4 (9..13); P4 clips it to 6.
    c3 = np.zeros((1, 4, 4, 1), np.float32)
    c3[0, 0, 0, 0] = -8.0  # 9 - 8 > 0 on the slim sum; 6 - 8 < 0 on the smoothed P4
    c4 = np.array([[-1.0, 2.0], [3.0, 0.5]], np.float32).reshape(1, 2, 2, 1)
    c5 = np.array([[10.0]], np.float32).reshape(1, 1, 1, 1)
    outputs = {}
    for slim_layout in (True, False):
        pyramid = FeaturePyramid(min_level=3, max_level=6, depth=1, slim_layout=slim_layout)
        pyramid([c3, c4, c5])
        _set_identity_weights(pyramid)
        outputs[slim_layout] = [
            o.numpy()[0, ..., 0] for o in pyramid([c3, c4, c5], training=False)
        ]
    p3, p4, p5, p6 = outputs[True]
    np.testing.assert_allclose(p5, [[10.0]])
    np.testing.assert_allclose(p4, np.full((2, 2), 6.0), atol=1e-6)
    up = np.repeat(np.repeat(10.0 + c4[0, ..., 0], 2, 0), 2, 1)
    expected_p3 = np.clip((up + c3[0, ..., 0]) * BATCH_NORM_SCALE, 0.0, 6.0)
    np.testing.assert_allclose(p3, expected_p3, atol=1e-6)
    assert p3[0, 0] == pytest.approx(1.0 * BATCH_NORM_SCALE)
    np.testing.assert_allclose(p6, [[6.0]], atol=1e-6)
    # The same weights in the Keras layout differ only where the smoothing clipped.
    keras_p3, keras_p4, keras_p5, keras_p6 = outputs[False]
    assert keras_p3[0, 0] == pytest.approx(0.0)
    for slim_map, keras_map in ((p4, keras_p4), (p5, keras_p5), (p6, keras_p6)):
        np.testing.assert_allclose(slim_map, keras_map)


def test_dict_input_matches_list_input():
    maps = _backbone_maps()
    pyramid = FeaturePyramid(min_level=3, max_level=7, depth=8)
    from_list = pyramid(maps)
    from_dict = pyramid({5: maps[2], 3: maps[0], 4: maps[1]})
    for a, b in zip(from_list, from_dict):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_odd_sizes_crop_the_upsampled_map():
    # A 100 px image under "same" stride-2 convolutions: 13, 7, 4 px at levels 3..5.
    maps = _backbone_maps(sizes=(13, 7, 4), channels=(1, 1, 1), batch=1)
    pyramid = FeaturePyramid(min_level=3, max_level=7, depth=1)
    pyramid(maps)
    _set_identity_weights(pyramid)
    p3, p4, p5, p6, p7 = pyramid(maps, training=False)
    assert [o.shape[1] for o in (p3, p4, p5, p6, p7)] == [13, 7, 4, 2, 1]
    up = np.repeat(np.repeat(p5.numpy()[0, ..., 0], 2, 0), 2, 1)[:7, :7]
    expected_p4 = np.clip((up + maps[1].numpy()[0, ..., 0]) * BATCH_NORM_SCALE, 0.0, 6.0)
    np.testing.assert_allclose(p4[0, ..., 0], expected_p4, atol=1e-5)


@pytest.mark.parametrize("use_explicit_padding, expected", [(False, 4.5), (True, 2.0)])
def test_explicit_padding_of_the_stride_2_layers(use_explicit_padding, expected):
    # All-ones 3x3 kernel on a 4x4 map of 0.5: "same" pads bottom/right only, so the first
    # output sums 9 taps; explicit padding pads every side, so it sums 4.
    pyramid = FeaturePyramid(
        min_level=5, max_level=6, depth=1, use_explicit_padding=use_explicit_padding
    )
    c5 = tf.fill([1, 4, 4, 1], 0.5)
    pyramid([c5])
    _set_identity_weights(pyramid)
    conv = pyramid.extra_blocks[0].layers[-3]
    conv.kernel.assign(tf.ones_like(conv.kernel))
    _, p6 = pyramid([c5], training=False)
    assert p6.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(p6[0, 0, 0, 0], expected * BATCH_NORM_SCALE, rtol=1e-5)


def test_depthwise_uses_separable_convolutions():
    pyramid = FeaturePyramid(min_level=3, max_level=7, depth=8, use_depthwise=True)
    pyramid(_backbone_maps())
    blocks = pyramid.smoothing_blocks + pyramid.extra_blocks
    assert len(blocks) == 4
    assert all(isinstance(block.layers[0], keras.layers.SeparableConv2D) for block in blocks)
    assert all(isinstance(conv, keras.layers.Conv2D) for conv in pyramid.lateral_convs)


def test_layers_get_different_initial_weights():
    pyramid = FeaturePyramid(min_level=3, max_level=7, depth=8)
    pyramid(_backbone_maps(channels=(8, 8, 8)))
    kernels = [layer.kernel.numpy() for layer in pyramid.lateral_convs]
    assert not np.allclose(kernels[0], kernels[1])


def test_runs_in_tf_function_with_unknown_spatial_size():
    pyramid = FeaturePyramid(min_level=3, max_level=7, depth=8)
    signature = [tf.TensorSpec([None, None, None, c]) for c in (4, 6, 8)]
    run = tf.function(lambda maps: pyramid(maps), input_signature=[signature])
    outputs = run(_backbone_maps())
    assert [o.shape[1] for o in outputs] == [16, 8, 4, 2, 1]


def test_gradients_reach_every_weight():
    maps = _backbone_maps()
    pyramid = FeaturePyramid(min_level=3, max_level=7, depth=8)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        loss = sum(tf.reduce_sum(o) for o in pyramid(maps, training=True))
    gradients = tape.gradient(loss, pyramid.trainable_weights + maps)
    assert all(g is not None and np.any(g.numpy() != 0.0) for g in gradients)


def test_rejects_bad_levels():
    with pytest.raises(ValueError, match="min_level must not exceed max_level"):
        FeaturePyramid(min_level=5, max_level=4, depth=8)
    with pytest.raises(ValueError, match="above max_level=4"):
        FeaturePyramid(min_level=3, max_level=4, depth=8)(_backbone_maps())
    with pytest.raises(ValueError, match="consecutive levels"):
        maps = _backbone_maps()
        FeaturePyramid(min_level=3, max_level=7, depth=8)({3: maps[0], 5: maps[2]})


def test_config_and_saved_model_round_trip(tmp_path):
    pyramid = FeaturePyramid(
        min_level=3,
        max_level=6,
        depth=8,
        use_depthwise=True,
        use_explicit_padding=True,
        kernel_regularizer=keras.regularizers.L2(2e-4),
        regularize_depthwise=True,
        slim_layout=True,
    )
    restored = FeaturePyramid.from_config(json.loads(json.dumps(pyramid.get_config())))
    assert restored.get_config() == pyramid.get_config()
    assert restored.slim_layout
    assert restored.kernel_regularizer.get_config() == {"l2": 2e-4}
    assert restored.regularize_depthwise

    inputs = [keras.Input((None, None, c)) for c in (4, 6, 8)]
    model = keras.Model(inputs, pyramid(inputs))
    path = str(tmp_path / "pyramid.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    maps = _backbone_maps()
    for a, b in zip(model(maps), loaded(maps)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "use_depthwise, regularize_depthwise", [(False, False), (True, False), (True, True)]
)
def test_kernel_regularizer_on_every_convolution_kernel(use_depthwise, regularize_depthwise):
    pyramid = FeaturePyramid(
        min_level=3,
        max_level=7,
        depth=8,
        use_depthwise=use_depthwise,
        kernel_regularizer=keras.regularizers.L2(1e-3),
        regularize_depthwise=regularize_depthwise,
    )
    pyramid(_backbone_maps())
    kernels = [layer.kernel for layer in pyramid.lateral_convs]
    for block in pyramid.smoothing_blocks + pyramid.extra_blocks:
        conv = block.layers[0]
        if use_depthwise:
            kernels.append(conv.pointwise_kernel)
            if regularize_depthwise:
                kernels.append(conv.depthwise_kernel)
        else:
            kernels.append(conv.kernel)
    regularized = [w for w in pyramid.trainable_weights if w.regularizer is not None]
    assert sorted(w.path for w in regularized) == sorted(kernel.path for kernel in kernels)
    expected = 1e-3 * sum(float(np.sum(np.square(kernel.numpy()))) for kernel in kernels)
    np.testing.assert_allclose(float(keras.ops.sum(pyramid.losses)), expected, rtol=1e-5)


def test_backbone_endpoints():
    endpoints = {2: "c2", 3: "c3", 4: "c4", 5: "c5"}
    assert backbone_endpoints(endpoints, 3, 7) == ["c3", "c4", "c5"]
    assert backbone_endpoints(endpoints, 2, 4) == ["c2", "c3", "c4"]
    with pytest.raises(ValueError, match="fpn_min_level must be one of"):
        backbone_endpoints(endpoints, 6, 7)
