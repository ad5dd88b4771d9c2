"""Inception v2 and v3 bodies in the TF-Slim layout, built from one description table each.

The TF OD API's Inception extractors (`ssd_inception_v2`, `ssd_inception_v3`,
`faster_rcnn_inception_v2`) run slim's `inception_v2_base` / `inception_v3_base`
(`nets/inception_v2.py`, `nets/inception_v3.py`). Both are a stem of convolutions and pools
followed by "Mixed" modules: parallel branches of convolutions (and a pool) on one input,
concatenated along channels. Here each network is a table (`INCEPTION_V2`, `INCEPTION_V3`) of
`Conv`, `Pool` and `Mixed` entries, and `inception_body` turns a table into a functional
`keras.Model`; no module is written out twice.

Every convolution is `[Conv2D, batch norm, activation]` set up by a
`kdet.layers.ConvHyperparams`, with depth `max(int(depth * depth_multiplier), min_depth)`
(slim's rule). Layer names carry the slim scopes, `/` written `_`, so TF1 checkpoints map by
name: `Mixed_4c/Branch_1/Conv2d_0b_3x3` is the convolution `Mixed_4c_Branch_1_Conv2d_0b_3x3_conv`,
its batch norm `..._batchnorm`, its activation `Mixed_4c_Branch_1_Conv2d_0b_3x3`; a stem
convolution `Conv2d_2c_3x3` is `Conv2d_2c_3x3_conv`, ...; each module's concatenation is named
after its endpoint (`Mixed_4c`), so `model.get_layer("Mixed_4c").output` is that endpoint.

`keras.applications.InceptionV3` is the Inception v3 table's network (the same convolutions,
batch norms, pools and concatenations in the same order): `restore_keras_inception_v3` copies
its ImageNet weights into a body of the table.
"""

import dataclasses

import keras
import numpy as np

from kdet.feature_extractors.multi_resolution_feature_maps import scaled_depth


@dataclasses.dataclass(frozen=True)
class Conv:
    """One slim `conv2d` (batch norm and activation after it) of an Inception table.

    Attributes:
        scope: slim scope, e.g. `"Conv2d_0b_3x3"` (in a stem: the endpoint name too).
        depth: int, filters at depth multiplier 1.
        kernel_size: int or `(height, width)`.
        strides: int. Defaults to `1`.
        padding: `"same"` or `"valid"`. Defaults to `"same"`.
        stddev: float or None. The truncated-normal stddev slim sets on this convolution's
            kernel (`weights_initializer=trunc_normal(stddev)`), replacing the
            hyperparams' initializer; None keeps it. Defaults to `None`.
        separable: bool. A slim `separable_conv2d` (depthwise `kernel_size` convolution, then
            1x1), its depthwise multiplier `min(int(depth / 3), 8)` of the scaled depth (slim's
            Inception v2 `Conv2d_1a_7x7`, on 3-channel images). Defaults to `False`.
    """

    scope: str
    depth: int
    kernel_size: object
    strides: int = 1
    padding: str = "same"
    stddev: float = None
    separable: bool = False


@dataclasses.dataclass(frozen=True)
class Pool:
    """A 3x3 slim `max_pool2d` or `avg_pool2d`, by its scope's prefix (`MaxPool_…`,
    `AvgPool_…`). Average pooling with "same" padding averages the pixels inside the image
    only, as TF's does."""

    scope: str
    strides: int = 1
    padding: str = "same"


@dataclasses.dataclass(frozen=True)
class Fork:
    """Convolutions of one input concatenated (Inception v3's 1x3 / 3x1 pairs)."""

    convs: tuple


@dataclasses.dataclass(frozen=True)
class Mixed:
    """An Inception module: `branches` (`Branch_0`, `Branch_1`, …), each a tuple of `Conv`,
    `Pool` and `Fork` applied in order to the module's input, concatenated along channels."""

    name: str
    branches: tuple


def _v2_module(name, branch_0, branch_1, branch_2, branch_3, pool="AvgPool_0a_3x3"):
    """An Inception v2 module: 1x1 | 1x1 → 3x3 | 1x1 → 3x3 → 3x3 | pool → 1x1, of depths
    `branch_0`, `branch_1 = (1x1, 3x3)`, `branch_2 = (1x1, 3x3)`, `branch_3`."""
    return Mixed(
        name,
        (
            (Conv("Conv2d_0a_1x1", branch_0, 1),),
            (
                Conv("Conv2d_0a_1x1", branch_1[0], 1, stddev=0.09),
                Conv("Conv2d_0b_3x3", branch_1[1], 3),
            ),
            (
                Conv("Conv2d_0a_1x1", branch_2[0], 1, stddev=0.09),
                Conv("Conv2d_0b_3x3", branch_2[1], 3),
                Conv("Conv2d_0c_3x3", branch_2[1], 3),
            ),
            (Pool(pool), Conv("Conv2d_0b_1x1", branch_3, 1, stddev=0.1)),
        ),
    )


def _v2_reduction(name, branch_0, branch_1):
    """An Inception v2 stride-2 module: 1x1 → 3x3/2 | 1x1 → 3x3 → 3x3/2 | max pool/2, of
    depths `branch_0 = (1x1, 3x3)`, `branch_1 = (1x1, 3x3)`."""
    return Mixed(
        name,
        (
            (
                Conv("Conv2d_0a_1x1", branch_0[0], 1, stddev=0.09),
                Conv("Conv2d_1a_3x3", branch_0[1], 3, strides=2),
            ),
            (
                Conv("Conv2d_0a_1x1", branch_1[0], 1, stddev=0.09),
                Conv("Conv2d_0b_3x3", branch_1[1], 3),
                Conv("Conv2d_1a_3x3", branch_1[1], 3, strides=2),
            ),
            (Pool("MaxPool_1a_3x3", strides=2),),
        ),
    )


# slim `inception_v2_base` (Ioffe & Szegedy, 2015), "SAME" padding throughout. Strides: 4 after
# MaxPool_2a, 8 after MaxPool_3a (Mixed_3b, 3c), 16 from Mixed_4a (to 4e), 32 from Mixed_5a.
INCEPTION_V2 = (
    Conv("Conv2d_1a_7x7", 64, 7, strides=2, stddev=1.0, separable=True),
    Pool("MaxPool_2a_3x3", strides=2),
    Conv("Conv2d_2b_1x1", 64, 1, stddev=0.1),
    Conv("Conv2d_2c_3x3", 192, 3),
    Pool("MaxPool_3a_3x3", strides=2),
    _v2_module("Mixed_3b", 64, (64, 64), (64, 96), 32),
    _v2_module("Mixed_3c", 64, (64, 96), (64, 96), 64),
    _v2_reduction("Mixed_4a", (128, 160), (64, 96)),
    _v2_module("Mixed_4b", 224, (64, 96), (96, 128), 128),
    _v2_module("Mixed_4c", 192, (96, 128), (96, 128), 128),
    _v2_module("Mixed_4d", 160, (128, 160), (128, 160), 96),
    _v2_module("Mixed_4e", 96, (128, 192), (160, 192), 96),
    _v2_reduction("Mixed_5a", (128, 192), (192, 256)),
    _v2_module("Mixed_5b", 352, (192, 320), (160, 224), 128),
    _v2_module("Mixed_5c", 352, (192, 320), (192, 224), 128, pool="MaxPool_0a_3x3"),
)


def _v3_35x35(name, pool_depth, branch_1_scopes=("Conv2d_0a_1x1", "Conv2d_0b_5x5")):
    """An Inception v3 module of the 35x35 grid: 1x1 | 1x1 → 5x5 | 1x1 → 3x3 → 3x3 |
    avg pool → 1x1 of depth `pool_depth` (slim names `Branch_1` of `Mixed_5c` otherwise)."""
    return Mixed(
        name,
        (
            (Conv("Conv2d_0a_1x1", 64, 1),),
            (Conv(branch_1_scopes[0], 48, 1), Conv(branch_1_scopes[1], 64, 5)),
            (
                Conv("Conv2d_0a_1x1", 64, 1),
                Conv("Conv2d_0b_3x3", 96, 3),
                Conv("Conv2d_0c_3x3", 96, 3),
            ),
            (Pool("AvgPool_0a_3x3"), Conv("Conv2d_0b_1x1", pool_depth, 1)),
        ),
    )


def _v3_17x17(name, depth):
    """An Inception v3 module of the 17x17 grid with factorized 7x7 convolutions of `depth`
    filters (192 at their ends)."""
    return Mixed(
        name,
        (
            (Conv("Conv2d_0a_1x1", 192, 1),),
            (
                Conv("Conv2d_0a_1x1", depth, 1),
                Conv("Conv2d_0b_1x7", depth, (1, 7)),
                Conv("Conv2d_0c_7x1", 192, (7, 1)),
            ),
            (
                Conv("Conv2d_0a_1x1", depth, 1),
                Conv("Conv2d_0b_7x1", depth, (7, 1)),
                Conv("Conv2d_0c_1x7", depth, (1, 7)),
                Conv("Conv2d_0d_7x1", depth, (7, 1)),
                Conv("Conv2d_0e_1x7", 192, (1, 7)),
            ),
            (Pool("AvgPool_0a_3x3"), Conv("Conv2d_0b_1x1", 192, 1)),
        ),
    )


def _v3_8x8(name, branch_1_3x1_scope):
    """An Inception v3 module of the 8x8 grid, with 1x3 / 3x1 forks (slim names the second
    convolution of `Branch_1`'s fork `branch_1_3x1_scope`)."""
    return Mixed(
        name,
        (
            (Conv("Conv2d_0a_1x1", 320, 1),),
            (
                Conv("Conv2d_0a_1x1", 384, 1),
                Fork((Conv("Conv2d_0b_1x3", 384, (1, 3)), Conv(branch_1_3x1_scope, 384, (3, 1)))),
            ),
            (
                Conv("Conv2d_0a_1x1", 448, 1),
                Conv("Conv2d_0b_3x3", 384, 3),
                Fork((Conv("Conv2d_0c_1x3", 384, (1, 3)), Conv("Conv2d_0d_3x1", 384, (3, 1)))),
            ),
            (Pool("AvgPool_0a_3x3"), Conv("Conv2d_0b_1x1", 192, 1)),
        ),
    )


# slim `inception_v3_base` (Szegedy et al., 2015): a "VALID"-padded stem, "SAME"-padded modules
# but for the stride-2 convolutions and pools of Mixed_6a and Mixed_7a. Strides: 8 at Mixed_5b
# to 5d, 16 at Mixed_6a to 6e, 32 at Mixed_7a to 7c.
INCEPTION_V3 = (
    Conv("Conv2d_1a_3x3", 32, 3, strides=2, padding="valid"),
    Conv("Conv2d_2a_3x3", 32, 3, padding="valid"),
    Conv("Conv2d_2b_3x3", 64, 3),
    Pool("MaxPool_3a_3x3", strides=2, padding="valid"),
    Conv("Conv2d_3b_1x1", 80, 1, padding="valid"),
    Conv("Conv2d_4a_3x3", 192, 3, padding="valid"),
    Pool("MaxPool_5a_3x3", strides=2, padding="valid"),
    _v3_35x35("Mixed_5b", 32),
    _v3_35x35("Mixed_5c", 64, branch_1_scopes=("Conv2d_0b_1x1", "Conv_1_0c_5x5")),
    _v3_35x35("Mixed_5d", 64),
    Mixed(
        "Mixed_6a",
        (
            (Conv("Conv2d_1a_1x1", 384, 3, strides=2, padding="valid"),),
            (
                Conv("Conv2d_0a_1x1", 64, 1),
                Conv("Conv2d_0b_3x3", 96, 3),
                Conv("Conv2d_1a_1x1", 96, 3, strides=2, padding="valid"),
            ),
            (Pool("MaxPool_1a_3x3", strides=2, padding="valid"),),
        ),
    ),
    _v3_17x17("Mixed_6b", 128),
    _v3_17x17("Mixed_6c", 160),
    _v3_17x17("Mixed_6d", 160),
    _v3_17x17("Mixed_6e", 192),
    Mixed(
        "Mixed_7a",
        (
            (
                Conv("Conv2d_0a_1x1", 192, 1),
                Conv("Conv2d_1a_3x3", 320, 3, strides=2, padding="valid"),
            ),
            (
                Conv("Conv2d_0a_1x1", 192, 1),
                Conv("Conv2d_0b_1x7", 192, (1, 7)),
                Conv("Conv2d_0c_7x1", 192, (7, 1)),
                Conv("Conv2d_1a_3x3", 192, 3, strides=2, padding="valid"),
            ),
            (Pool("MaxPool_1a_3x3", strides=2, padding="valid"),),
        ),
    ),
    _v3_8x8("Mixed_7b", "Conv2d_0b_3x1"),
    _v3_8x8("Mixed_7c", "Conv2d_0c_3x1"),
)

ARCHITECTURES = {"InceptionV2": INCEPTION_V2, "InceptionV3": INCEPTION_V3}


def endpoint_name(entry):
    """The endpoint an entry of a table ends at: a module's name, a stem layer's scope."""
    return entry.name if isinstance(entry, Mixed) else entry.scope


def inception_body(
    architecture, final_endpoint, hyperparams, depth_multiplier=1.0, min_depth=16
):
    """The slim Inception network `architecture` from images to `final_endpoint`.

    Args:
        architecture: `"InceptionV2"` or `"InceptionV3"` (the model's name, slim's scope).
        final_endpoint: str, the last endpoint built, e.g. `"Mixed_5c"`.
        hyperparams: a `kdet.layers.ConvHyperparams` setting up every convolution, batch norm
            and activation (a `Conv`'s `stddev` replaces its initializer).
        depth_multiplier: float > 0. Defaults to `1.0`.
        min_depth: int. Defaults to `16`.

    Returns:
        A functional `keras.Model` `[batch, height, width, 3]` → the endpoint's map, whose
        layers carry the slim scopes (see the module docstring).
    """
    if depth_multiplier <= 0:
        raise ValueError(f"depth_multiplier must be greater than zero; got {depth_multiplier}")
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {list(ARCHITECTURES)}; got {architecture!r}"
        )
    table = ARCHITECTURES[architecture]
    endpoints = [endpoint_name(entry) for entry in table]
    if final_endpoint not in endpoints:
        raise ValueError(
            f"{architecture} has no endpoint {final_endpoint!r}; expected one of {endpoints}"
        )
    builder = _Builder(hyperparams, depth_multiplier, min_depth)
    images = keras.Input((None, None, 3), name="images")
    net = images
    for entry in table[: endpoints.index(final_endpoint) + 1]:
        if isinstance(entry, Mixed):
            net = builder.mixed(net, entry)
        else:
            net = builder.op(net, entry, prefix="")
    return keras.Model(images, net, name=architecture)


@dataclasses.dataclass(frozen=True)
class _Builder:
    """Applies table entries to Keras tensors with one set of hyperparams and depths."""

    hyperparams: object
    depth_multiplier: float
    min_depth: int

    def depth(self, depth):
        return scaled_depth(depth, self.depth_multiplier, self.min_depth)

    def mixed(self, net, module):
        branches = []
        for index, branch in enumerate(module.branches):
            out = net
            for op in branch:
                out = self.op(out, op, prefix=f"{module.name}_Branch_{index}_")
            branches.append(out)
        return keras.layers.Concatenate(name=module.name)(branches)

    def op(self, net, op, prefix):
        if isinstance(op, Fork):
            outputs = [self.conv(net, conv, prefix) for conv in op.convs]
            return keras.layers.Concatenate(name=f"{prefix}{op.convs[0].scope}_fork")(outputs)
        if isinstance(op, Pool):
            pool = (
                keras.layers.MaxPooling2D
                if op.scope.startswith("MaxPool")
                else keras.layers.AveragePooling2D
            )
            return pool(3, strides=op.strides, padding=op.padding, name=prefix + op.scope)(net)
        return self.conv(net, op, prefix)

    def conv(self, net, conv, prefix):
        name = prefix + conv.scope
        hyperparams = self.hyperparams
        if conv.stddev is not None:
            hyperparams = hyperparams.replace(
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=conv.stddev)
            )
        depth = self.depth(conv.depth)
        arguments = {"strides": conv.strides, "padding": conv.padding, "name": f"{name}_conv"}
        if conv.separable:
            # slim's `separable_conv2d` regularizes both kernels.
            layer = keras.layers.SeparableConv2D(
                depth,
                conv.kernel_size,
                depth_multiplier=min(int(depth / 3), 8),
                **arguments,
                **hyperparams.replace(regularize_depthwise=True).separable_conv_kwargs(),
            )
        else:
            layer = keras.layers.Conv2D(
                depth, conv.kernel_size, **arguments, **hyperparams.conv_kwargs()
            )
        net = layer(net)
        batch_norm = hyperparams.batch_norm_layer(name=f"{name}_batchnorm")
        if batch_norm is not None:
            net = batch_norm(net)
        activation = hyperparams.activation_layer(name=name)
        return net if activation is None else activation(net)


def restore_keras_inception_v3(source, body):
    """Copies the weights of a `keras.applications.InceptionV3` into an Inception v3 body.

    Keras's network is slim's `inception_v3_base` (a convolution without bias, a batch norm
    without scale, a ReLU; the same modules, branches and concatenation order), but its layers
    are named by a session counter (`conv2d_57`): the weights pair up by position, the layers
    with weights of both models coming in the same order (the same graph). Each batch norm's
    missing scale becomes ones where `body`'s batch norms have one.

    Args:
        source: a `keras.applications.InceptionV3` with or without top (its weights from
            `weights="imagenet"`, or any), or the path of a `.keras` file of one.
        body: a functional `keras.Model` of `inception_body("InceptionV3", "Mixed_7c", ...)`
            layers (or a model with the same layers and outputs at its endpoints), at depth
            multiplier 1, with centering batch norms.

    Returns:
        The sorted names of the layers of `body` set.

    Raises:
        ValueError: the layers with weights differ in number, kind or shape (e.g. another
            depth multiplier, no batch norms), or `body`'s batch norms have no center.
    """
    if not isinstance(source, keras.layers.Layer):
        source = keras.saving.load_model(source, compile=False)
    theirs = [layer for layer in source.layers if layer.weights and layer.name != "predictions"]
    ours = [layer for layer in body.layers if layer.weights]
    if len(theirs) != len(ours):
        raise ValueError(
            f"{source.name!r} has {len(theirs)} layers with weights (but its classifier), the "
            f"Inception v3 body {body.name!r} {len(ours)}: expected a "
            "keras.applications.InceptionV3 and a body up to Mixed_7c with a batch norm after "
            "each convolution"
        )
    pairs = [(mine, _inception_v3_values(mine, other)) for mine, other in zip(ours, theirs)]
    for mine, values in pairs:
        mine.set_weights(values)
    return sorted(layer.name for layer in ours)


def _inception_v3_values(mine, other):
    """The weights of Keras's layer `other` laid out as those of the body's layer `mine`."""
    if isinstance(other, keras.layers.BatchNormalization) and isinstance(
        mine, keras.layers.BatchNormalization
    ):
        if not mine.center:
            raise ValueError(
                f"the batch norm {mine.name!r} has no center (offset), so Keras's "
                f"{other.name!r} does not load into it: build the body with batch_norm "
                "center true (the TF OD API default)"
            )
        beta, mean, variance = other.get_weights()
        values = [beta, mean, variance]
        if mine.scale:
            values.insert(0, np.ones_like(beta))
    elif type(other) is keras.layers.Conv2D and type(mine) is keras.layers.Conv2D:
        values = other.get_weights()
    else:
        values = None
    shapes = [tuple(weight.shape) for weight in mine.weights]
    if values is None or [tuple(value.shape) for value in values] != shapes:
        raise ValueError(
            f"layer {mine.name!r} ({type(mine).__name__}, weights {shapes}) has no "
            f"counterpart in keras.applications.InceptionV3: its layer {other.name!r} at the "
            f"same place is a {type(other).__name__} with weights "
            f"{[tuple(w.shape) for w in other.weights]} (Keras's weights need depth multiplier "
            "1 and a batch norm after each convolution)"
        )
    return values
