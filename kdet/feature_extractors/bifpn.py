"""Bidirectional feature pyramid (BiFPN) of EfficientDet, with its weighted feature fusion."""

import dataclasses

import keras
import tensorflow as tf

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.layers.conv_hyperparams import ConvHyperparamsProperties

# How a BiFPN node adds up its inputs (TF OD API `bifpn.combine_method`).
COMBINE_METHODS = ("sum", "weighted_sum", "attention", "fast_attention")
# Keeps the fast normalized fusion finite when every weight is clipped to 0 (TF OD API value).
FAST_ATTENTION_EPSILON = 1e-4

# The `BiFPN` default: the feature extractor conv_hyperparams of the TF OD API EfficientDet
# configs (truncated normal stddev 0.03, batch norm decay 0.99, epsilon 1e-3, scale, swish,
# force_use_bias), without their L2 regularizer.
DEFAULT_CONV_HYPERPARAMS = ConvHyperparams(
    kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
    activation="swish",
    batch_norm={"momentum": 0.99, "epsilon": 1e-3, "scale": True},
    force_use_bias=True,
)


@keras.saving.register_keras_serializable(package="kdet")
class WeightedFeatureFusion(keras.layers.Layer):
    """Adds up same-shaped feature maps with one learned weight per input (BiFPN fusion).

    With `method="fast_attention"` (EfficientDet's *fast normalized fusion*) the output is
    `sum_i w_i * x_i / (sum_j w_j + 1e-4)` with `w = relu(bifpn_combine_weights)`: the
    effective weights are non-negative and sum to just under 1, without the cost of a softmax.
    `"weighted_sum"` uses the raw weights, `"sum"` none (no variable). `"attention"` is what
    the TF OD API computes for it: a softmax over the last axis of the `[num_inputs, 1]`
    weights, i.e. every weight is 1 (a plain sum that still owns the variable, so its
    checkpoints load). The weights start at 1.

    Args:
        method: one of `COMBINE_METHODS`. Defaults to `"fast_attention"`.
        **kwargs: passed to `keras.layers.Layer`.

    Call args:
        inputs: list of at least 2 float tensors of one shape `[batch, h, w, c]`.

    Returns:
        float tensor `[batch, h, w, c]`.

    Example:
    ```python
    fusion = kdet.feature_extractors.bifpn.WeightedFeatureFusion()
    fusion([tf.ones([1, 4, 4, 8]), 3 * tf.ones([1, 4, 4, 8])])  # ≈ 2 everywhere
    ```

    Reference:
        [Tan et al., 2020](https://arxiv.org/abs/1911.09070), section 3.3; TF OD API
        `object_detection/utils/bifpn_utils.py` (`BiFPNCombineLayer`).
    """

    def __init__(self, method="fast_attention", **kwargs):
        super().__init__(**kwargs)
        if method not in COMBINE_METHODS:
            raise ValueError(f"method must be one of {COMBINE_METHODS}; got {method!r}")
        self.method = method

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2:
            raise ValueError(
                f"{type(self).__name__} combines a list of at least 2 feature maps; got "
                f"input shape {input_shape}"
            )
        if self.method != "sum":
            self.bifpn_combine_weights = self.add_weight(
                name="bifpn_combine_weights",
                shape=(len(input_shape), 1),
                initializer="ones",
            )

    def fusion_weights(self):
        """The effective weight of each input, float32 `[num_inputs]` (ones for `"sum"`)."""
        if self.method == "sum":
            raise ValueError("a 'sum' fusion has no weights")
        weights = self.bifpn_combine_weights
        if self.method == "fast_attention":
            weights = tf.nn.relu(weights)
            weights = weights / (tf.reduce_sum(weights) + FAST_ATTENTION_EPSILON)
        elif self.method == "attention":
            weights = tf.nn.softmax(weights)  # over the length-1 axis, as the TF OD API
        return tf.reshape(weights, [-1])

    def call(self, inputs):
        if self.method == "sum":
            return tf.add_n(list(inputs))
        weights = tf.cast(self.fusion_weights(), inputs[0].dtype)
        return tf.add_n([weights[index] * x for index, x in enumerate(inputs)])

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "method": self.method}


@dataclasses.dataclass(frozen=True)
class BiFPNNode:
    """One node of the BiFPN graph (the TF OD API's node config).

    Attributes:
        name: `"{iteration}_{dn|up}_lvl_{level}"`; the backbone maps are the nodes
            `"0_up_lvl_{level}"` up to the body's last level, and levels above it are nodes
            of the same name computed from the level below.
        level: pyramid level (stride `2**level`).
        inputs: names of the nodes it reads.
    """

    name: str
    level: int
    inputs: tuple


def bifpn_nodes(min_level, max_level, input_max_level, num_iterations):
    """The BiFPN graph: the computed nodes in the order they run.

    First the levels `input_max_level + 1..max_level` above the body (`0_up_lvl_l` from
    `0_up_lvl_{l-1}`); then per iteration `i` a top-down pass from `max_level - 1` down to
    `min_level` (`i_dn_lvl_l` from the same level of the previous iteration and the node just
    made) and a bottom-up pass from `min_level + 1` to `max_level` (`i_up_lvl_l` from the
    previous iteration's level, this iteration's top-down node of that level but at
    `max_level`, and the node just made). The finest level lives in the top-down pass: after
    the first iteration its top-down node is read, not a bottom-up one. The last
    `max_level - min_level + 1` nodes are the outputs, finest first.

    Args:
        min_level, max_level: int. Pyramid levels.
        input_max_level: int. The body's last level (`min_level <= input_max_level`).
        num_iterations: int >= 1. Top-down + bottom-up passes.

    Returns:
        list of `BiFPNNode`.
    """
    nodes = []

    def last():
        # Without levels above the body the first top-down node reads the body's last map
        # (where the TF OD API fails: it requires max_level above the body's last level).
        return nodes[-1].name if nodes else f"0_up_lvl_{input_max_level}"

    for level in range(input_max_level + 1, max_level + 1):
        nodes.append(BiFPNNode(f"0_up_lvl_{level}", level, (f"0_up_lvl_{level - 1}",)))
    for iteration in range(1, num_iterations + 1):
        previous = iteration - 1
        for level in reversed(range(min_level, max_level)):
            same_level = (
                f"{previous}_up_lvl_{level}"
                if level > min_level or iteration == 1
                else f"{previous}_dn_lvl_{level}"
            )
            nodes.append(BiFPNNode(f"{iteration}_dn_lvl_{level}", level, (same_level, last())))
        for level in range(min_level + 1, max_level + 1):
            inputs = [f"{previous}_up_lvl_{level}"]
            if level < max_level:
                inputs.append(f"{iteration}_dn_lvl_{level}")
            inputs.append(last())
            nodes.append(BiFPNNode(f"{iteration}_up_lvl_{level}", level, tuple(inputs)))
    return nodes


@keras.saving.register_keras_serializable(package="kdet")
class BiFPN(ConvHyperparamsProperties, keras.layers.Layer):
    """EfficientDet's bidirectional feature pyramid: backbone levels → `num_filters`-deep
    pyramid levels `min_level..max_level`, refined by `num_iterations` top-down and bottom-up
    passes.

    The graph is `bifpn_nodes`. Each node brings each input to its level and depth, fuses them
    with a `WeightedFeatureFusion` (`combine_method`) and applies the activation, a separable
    3x3 convolution and batch norm (in that order). Bringing an input to the node:
    - a backbone map first goes through a 1x1 convolution and batch norm to `num_filters`
      channels, a new one for each node that reads it (as the TF OD API does, whatever its
      channels);
    - a finer map is max-pooled (3x3, stride 2, "same"), a coarser one upsampled x2 (nearest
      neighbour, cropped to the finer map's size for sides that are not a multiple of the
      coarsest stride).
    Levels above the body's last one are, each, the max-pooled level below (after the 1x1
    projection when that level is the body's), with no fusion or convolution.
    `conv_hyperparams` give every convolution its initializer, regularizer (the separable
    convolutions' depthwise kernels too, as the TF OD API does here) and bias rule, and every
    batch norm and activation.

    This is the TF OD API's `KerasBiFpnFeatureMaps` with `use_native_resize_op=False`
    (`tf.image` nearest-neighbour resizing computes the same x2 upsampling), so the mapping
    of its TF2 checkpoints is one to one (`kdet.checkpoints`).

    Args:
        min_level: int. Level of the first input map and of the first output.
        max_level: int. Level of the last output.
        num_iterations: int >= 1. Top-down + bottom-up passes (TF OD API `num_iterations`).
        num_filters: int. Channels of every output map (TF OD API `num_filters`).
        combine_method: one of `COMBINE_METHODS`. Defaults to `"fast_attention"`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            `DEFAULT_CONV_HYPERPARAMS` (the EfficientDet configs' values without their
            regularizer). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Call args:
        inputs: list of float tensors `[batch, h_l, w_l, c_l]` for levels
            `min_level..input_max_level` (`input_max_level <= max_level`), finest first.

    Returns:
        list of `max_level - min_level + 1` float tensors `[batch, h_l, w_l, num_filters]`,
        finest first.

    Example:
    ```python
    bifpn = kdet.feature_extractors.BiFPN(3, 7, num_iterations=2, num_filters=16)
    c3, c4, c5 = tf.zeros([1, 16, 16, 24]), tf.zeros([1, 8, 8, 40]), tf.zeros([1, 4, 4, 80])
    [p.shape[1] for p in bifpn([c3, c4, c5])]  # [16, 8, 4, 2, 1]
    ```

    Reference:
        [Tan et al., 2020](https://arxiv.org/abs/1911.09070); TF OD API
        `object_detection/models/bidirectional_feature_pyramid_generators.py`.
    """

    def __init__(
        self,
        min_level,
        max_level,
        num_iterations,
        num_filters,
        combine_method="fast_attention",
        conv_hyperparams=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if min_level > max_level:
            raise ValueError(
                f"min_level must not exceed max_level; got min_level={min_level}, "
                f"max_level={max_level}"
            )
        if num_iterations < 1 or num_filters < 1:
            raise ValueError(
                "num_iterations and num_filters must be positive (BiFPN messages need both: "
                f"the TF OD API has no default); got num_iterations={num_iterations}, "
                f"num_filters={num_filters}"
            )
        if combine_method not in COMBINE_METHODS:
            raise ValueError(
                f"combine_method must be one of {COMBINE_METHODS}; got {combine_method!r}"
            )
        self.min_level = min_level
        self.max_level = max_level
        self.num_iterations = num_iterations
        self.num_filters = num_filters
        self.combine_method = combine_method
        self.conv_hyperparams = (
            conv_hyperparams_lib.get(conv_hyperparams) or DEFAULT_CONV_HYPERPARAMS
        )

    def build(self, input_shape):
        shapes = list(input_shape)
        input_max_level = self.min_level + len(shapes) - 1
        if not shapes or input_max_level > self.max_level:
            raise ValueError(
                f"{type(self).__name__} takes the maps of levels {self.min_level}..k with "
                f"k <= max_level={self.max_level}; got {len(shapes)} maps"
            )
        self.input_max_level = input_max_level
        self.nodes = bifpn_nodes(
            self.min_level, self.max_level, input_max_level, self.num_iterations
        )
        levels = {f"0_up_lvl_{level}": level for level in range(self.min_level, input_max_level + 1)}
        levels.update({node.name: node.level for node in self.nodes})
        depth_shape = (None, None, None, self.num_filters)
        # Per node: one block per input, the fusion and the post-fusion convolution (None
        # where the node has a single input).
        self.input_blocks = []
        self.fusions = []
        self.post_fusion_blocks = []
        for index, node in enumerate(self.nodes):
            blocks = []
            for position, source in enumerate(node.inputs):
                from_body = _body_level(source, self.min_level, input_max_level)
                block = self._input_block(
                    f"node_{index}_input_{position}", from_body, levels[source], node.level
                )
                shape = shapes[from_body - self.min_level] if from_body else depth_shape
                block.build(shape)
                blocks.append(block)
            self.input_blocks.append(blocks)
            if len(node.inputs) > 1:
                fusion = WeightedFeatureFusion(self.combine_method, name=f"node_{index}_fusion")
                fusion.build([depth_shape] * len(node.inputs))
                post = self._post_fusion_block(f"node_{index}_post_fusion")
                post.build(depth_shape)
            else:
                fusion = post = None
            self.fusions.append(fusion)
            self.post_fusion_blocks.append(post)

    def call(self, inputs, training=None):
        maps = {
            f"0_up_lvl_{level}": feature_map
            for level, feature_map in enumerate(inputs, start=self.min_level)
        }
        for node, blocks, fusion, post in zip(
            self.nodes, self.input_blocks, self.fusions, self.post_fusion_blocks
        ):
            resampled = []
            for source, block in zip(node.inputs, blocks):
                resampled.append(block(maps[source], training=training))
            if fusion is None:
                maps[node.name] = resampled[0]
                continue
            reference = resampled[0]
            resampled = [_crop_like(x, reference) for x in resampled]
            maps[node.name] = post(fusion(resampled), training=training)
        outputs = self.nodes[-(self.max_level - self.min_level + 1):]
        return [maps[node.name] for node in outputs]

    def _input_block(self, name, from_body, input_level, output_level):
        """1x1 projection and batch norm (for a body map), then max-pool or upsampling."""
        hyperparams = self.conv_hyperparams
        layers = []
        if from_body:
            layers += [
                keras.layers.Conv2D(
                    self.num_filters, 1, name=f"{name}_conv", **hyperparams.conv_kwargs()
                ),
                hyperparams.batch_norm_layer(name=f"{name}_batchnorm"),
            ]
        if input_level < output_level:
            if output_level - input_level != 1:
                raise ValueError("BiFPN inputs are one level apart")
            layers.append(keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_pool"))
        elif input_level > output_level:
            layers.append(
                keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_upsample")
            )
        layers = [layer for layer in layers if layer is not None]
        if not layers:
            return keras.layers.Identity(name=name)
        return keras.Sequential(layers, name=name)

    def _post_fusion_block(self, name):
        """Activation, separable 3x3 convolution, batch norm (TF OD API order)."""
        hyperparams = self.conv_hyperparams
        layers = [
            hyperparams.activation_layer(name=f"{name}_activation"),
            keras.layers.SeparableConv2D(
                self.num_filters,
                3,
                padding="same",
                name=f"{name}_separable_conv",
                **hyperparams.replace(regularize_depthwise=True).separable_conv_kwargs(),
            ),
            hyperparams.batch_norm_layer(name=f"{name}_batchnorm"),
        ]
        return keras.Sequential([layer for layer in layers if layer is not None], name=name)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "min_level": self.min_level,
                "max_level": self.max_level,
                "num_iterations": self.num_iterations,
                "num_filters": self.num_filters,
                "combine_method": self.combine_method,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
            }
        )
        return config


def _body_level(name, min_level, input_max_level):
    """The level of the body map node `name` is (`0_up_lvl_l`, l <= input_max_level), else 0."""
    iteration, _, _, level = name.split("_")
    level = int(level)
    if iteration == "0" and min_level <= level <= input_max_level:
        return level
    return 0


def _crop_like(feature_map, reference):
    """`feature_map` cropped to the height and width of `reference` (upsampled maps of odd
    sides come out one pixel larger); as it is where both sides are known to agree (a crop
    would cost a copy and its gradient one more)."""
    if None not in feature_map.shape[1:3] and feature_map.shape[1:3] == reference.shape[1:3]:
        return feature_map
    shape = tf.shape(reference)
    return feature_map[:, : shape[1], : shape[2], :]
