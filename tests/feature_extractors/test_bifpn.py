"""BiFPN: the TF OD API's node graph, its fusion methods, shapes, layers and serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import BiFPN
from kdet.feature_extractors import WeightedFeatureFusion
from kdet.feature_extractors.bifpn import bifpn_nodes


def _maps(values, shape=(1, 2, 2, 3)):
    return [tf.fill(shape, float(value)) for value in values]


def test_fast_attention_weights_are_non_negative_and_normalized():
    fusion = WeightedFeatureFusion("fast_attention")
    fusion.build([(1, 2, 2, 3)] * 3)
    np.testing.assert_allclose(fusion.fusion_weights(), np.full(3, 1 / (3 + 1e-4)), rtol=1e-6)
    fusion.bifpn_combine_weights.assign([[-2.0], [1.0], [3.0]])
    weights = fusion.fusion_weights().numpy()
    np.testing.assert_allclose(weights, [0.0, 1 / 4.0001, 3 / 4.0001], rtol=1e-6)
    assert (weights >= 0).all() and weights.sum() < 1.0
    output = fusion(_maps([100.0, 2.0, 6.0]))
    np.testing.assert_allclose(output, np.full((1, 2, 2, 3), 20 / 4.0001), rtol=1e-6)


def test_fusion_weights_learn_and_stay_normalized():
    fusion = WeightedFeatureFusion()
    inputs = _maps([1.0, 5.0])
    optimizer = keras.optimizers.SGD(1.0)
    for _ in range(20):  # pull the output towards 5: the second input's share grows
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((fusion(inputs) - 5.0) ** 2)
        optimizer.apply(tape.gradient(loss, fusion.trainable_variables), fusion.trainable_variables)
    weights = fusion.fusion_weights().numpy()
    assert weights[1] > 0.9 and weights[0] >= 0.0 and weights.sum() <= 1.0


@pytest.mark.parametrize(
    "method, expected",
    [("sum", 9.0), ("weighted_sum", 2 * 1 + 3 * 2 + 4 * 3), ("attention", 9.0)],
)
def test_other_combine_methods(method, expected):
    fusion = WeightedFeatureFusion(method)
    fusion.build([(1, 2, 2, 3)] * 3)
    if method != "sum":
        fusion.bifpn_combine_weights.assign([[1.0], [2.0], [3.0]])
    else:
        assert not fusion.weights
    # "attention" is the TF OD API's softmax over a length-1 axis: every weight is 1.
    np.testing.assert_allclose(fusion(_maps([2.0, 3.0, 4.0])), np.full((1, 2, 2, 3), expected))


def test_the_node_graph_is_the_tf_od_apis():
    # The TF OD API's _create_bifpn_node_config(2, _, 3, 6, 4): levels 5 and 6 above the body.
    nodes = [(n.name, n.level, n.inputs) for n in bifpn_nodes(3, 6, 4, 2)]
    assert nodes == [
        ("0_up_lvl_5", 5, ("0_up_lvl_4",)),
        ("0_up_lvl_6", 6, ("0_up_lvl_5",)),
        ("1_dn_lvl_5", 5, ("0_up_lvl_5", "0_up_lvl_6")),
        ("1_dn_lvl_4", 4, ("0_up_lvl_4", "1_dn_lvl_5")),
        ("1_dn_lvl_3", 3, ("0_up_lvl_3", "1_dn_lvl_4")),
        ("1_up_lvl_4", 4, ("0_up_lvl_4", "1_dn_lvl_4", "1_dn_lvl_3")),
        ("1_up_lvl_5", 5, ("0_up_lvl_5", "1_dn_lvl_5", "1_up_lvl_4")),
        ("1_up_lvl_6", 6, ("0_up_lvl_6", "1_up_lvl_5")),
        ("2_dn_lvl_5", 5, ("1_up_lvl_5", "1_up_lvl_6")),
        ("2_dn_lvl_4", 4, ("1_up_lvl_4", "2_dn_lvl_5")),
        ("2_dn_lvl_3", 3, ("1_dn_lvl_3", "2_dn_lvl_4")),
        ("2_up_lvl_4", 4, ("1_up_lvl_4", "2_dn_lvl_4", "2_dn_lvl_3")),
        ("2_up_lvl_5", 5, ("1_up_lvl_5", "2_dn_lvl_5", "2_up_lvl_4")),
        ("2_up_lvl_6", 6, ("1_up_lvl_6", "2_up_lvl_5")),
    ]


def test_layers_shapes_and_odd_sizes():
    bifpn = BiFPN(3, 6, num_iterations=2, num_filters=8)
    # A 40x40 image: levels 3 and 4 are 5 and 3 wide, above them 2 and 1 ("same" rounding up).
    outputs = bifpn([tf.random.normal([2, 5, 5, 6]), tf.random.normal([2, 3, 3, 10])])
    assert [tuple(o.shape) for o in outputs] == [(2, s, s, 8) for s in (5, 3, 2, 1)]
    # A 1x1 projection + batch norm for every read of a body map (4 reads) and none else.
    projections = [
        layer for blocks in bifpn.input_blocks for block in blocks
        for layer in getattr(block, "layers", []) if isinstance(layer, keras.layers.Conv2D)
    ]
    assert [p.kernel.shape[2] for p in projections] == [10, 10, 6, 10]
    fused = [n for n, f in zip(bifpn.nodes, bifpn.fusions) if f is not None]
    assert len(fused) == 12 and bifpn.fusions[:2] == [None, None]
    post = bifpn.post_fusion_blocks[2]
    assert [type(layer).__name__ for layer in post.layers] == [
        "Activation", "SeparableConv2D", "FusedBatchNormalization"
    ]
    assert post.layers[1].depthwise_regularizer is None  # default hyperparams: no regularizer


def test_get_config_round_trip():
    bifpn = BiFPN(3, 5, num_iterations=1, num_filters=4, combine_method="sum", name="p")
    inputs = [tf.random.normal([1, 8, 8, 3]), tf.random.normal([1, 4, 4, 5])]
    expected = bifpn(inputs)
    copy = BiFPN.from_config(bifpn.get_config())
    copy.build([tuple(x.shape) for x in inputs])
    copy.set_weights(bifpn.get_weights())
    for a, b in zip(copy(inputs), expected):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert copy.get_config() == bifpn.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_iterations": 0}, "num_iterations and num_filters must be positive"),
        ({"combine_method": "max"}, "combine_method must be one of"),
        ({"min_level": 6}, "min_level must not exceed max_level"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BiFPN(**{"min_level": 3, "max_level": 5, "num_iterations": 1, "num_filters": 4, **kwargs})
