"""The extra feature maps the plain SSD extractors build on their body's last map.

The TF OD API's `multi_resolution_feature_maps` (TF1, slim) and
`KerasMultiResolutionFeatureMaps` (TF2) with `insert_1x1_conv=True`: each extra map is a 1x1
convolution to half its depth, then a stride-2 convolution (or depthwise + 1x1 with
`use_depthwise`), each followed by batch norm and activation. SSD MobileNetV1 and V2 share it;
the layer names are the TF OD API's, so checkpoints map by name.
"""

import keras


def scaled_depth(depth, depth_multiplier, min_depth):
    """`max(int(depth * depth_multiplier), min_depth)`: the TF OD API `get_depth_fn`."""
    return max(int(depth * depth_multiplier), min_depth)


def extra_feature_map_layers(
    base_name,
    first_index,
    depths,
    hyperparams,
    depth_multiplier=1.0,
    min_depth=16,
    kernel_sizes=None,
    use_depthwise=False,
    use_explicit_padding=False,
):
    """One `keras.Sequential` per extra feature map, each fed the previous map.

    Map `index` (`first_index`, `first_index + 1`, ...) of nominal depth `d` and kernel size
    `k` is a 1x1 convolution `{base_name}_1_Conv2d_{index}_1x1_{d // 2 scaled}`, then a
    stride-2 `k`x`k` convolution `{base_name}_2_Conv2d_{index}_{k}x{k}_s2_{d scaled}` (with
    `use_depthwise`: a depthwise `k`x`k` convolution `..._depthwise` and a 1x1 convolution),
    each `[conv, batch norm, activation]` as `conv_block` names them; depths are scaled by
    `scaled_depth`. The Sequential is named `{base_name}_Conv2d_{index}`.

    Args:
        base_name: str. TF OD API name of the body map the extra maps grow from
            (`"layer_19"` for MobileNetV2, `"Conv2d_13_pointwise"` for MobileNetV1).
        first_index: int. Position of the first extra map in the TF OD API
            `feature_map_layout` (the number of body maps before it).
        depths: sequence of int, the nominal depth of each extra map.
        hyperparams: a `kdet.layers.ConvHyperparams` setting up every layer.
        depth_multiplier: float. Defaults to `1.0`.
        min_depth: int. Defaults to `16`.
        kernel_sizes: sequence of int, the stride-2 kernel size of each map, or `None` for 3
            everywhere (the TF OD API `conv_kernel_size`). Defaults to `None`.
        use_depthwise: bool. Defaults to `False`.
        use_explicit_padding: bool. Pad as TF OD API `ops.fixed_padding` before each stride-2
            convolution and convolve with "valid" padding, instead of "same". Defaults to
            `False`.

    Returns:
        list of `keras.Sequential`, `[batch, h, w, c]` → `[batch, ceil(h / 2), ceil(w / 2),
        d scaled]` each.
    """
    kernel_sizes = kernel_sizes or (3,) * len(depths)
    blocks = []
    for index, depth, kernel_size in zip(
        range(first_index, first_index + len(depths)), depths, kernel_sizes
    ):
        reduced = scaled_depth(depth // 2, depth_multiplier, min_depth)
        out = scaled_depth(depth, depth_multiplier, min_depth)
        layers = conv_block(hyperparams, f"{base_name}_1_Conv2d_{index}_1x1_{reduced}", 1, reduced)
        name = f"{base_name}_2_Conv2d_{index}_{kernel_size}x{kernel_size}_s2_{out}"
        if use_depthwise:
            layers += conv_block(
                hyperparams, f"{name}_depthwise", kernel_size, strides=2,
                explicit_padding=use_explicit_padding,
            )
            layers += conv_block(hyperparams, name, 1, out)
        else:
            layers += conv_block(
                hyperparams, name, kernel_size, out, strides=2,
                explicit_padding=use_explicit_padding,
            )
        blocks.append(keras.Sequential(layers, name=f"{base_name}_Conv2d_{index}"))
    return blocks


def conv_block(hyperparams, name, kernel_size, filters=None, strides=1, explicit_padding=False):
    """`[conv, batch norm, activation]` named `{name}_conv`, `{name}_batchnorm`, `{name}`.

    `filters=None` makes the convolution depthwise. `hyperparams` (a `ConvHyperparams`) set up
    all three; without batch norm or activation those layers are left out. With
    `explicit_padding` a `{name}_padding` layer pads as TF OD API `ops.fixed_padding`
    (`(kernel_size - 1) // 2` pixels before, the rest after: one on every side for 3x3) and
    the convolution is "valid".
    """
    padding = []
    if explicit_padding and kernel_size > 1:
        before = (kernel_size - 1) // 2
        after = kernel_size - 1 - before
        padding = [
            keras.layers.ZeroPadding2D(((before, after), (before, after)), name=f"{name}_padding")
        ]
    conv_kwargs = {
        "strides": strides,
        "padding": "valid" if padding else "same",
        "name": f"{name}_conv",
    }
    if filters is None:
        conv = keras.layers.DepthwiseConv2D(
            kernel_size, **conv_kwargs, **hyperparams.depthwise_conv_kwargs()
        )
    else:
        conv = keras.layers.Conv2D(
            filters, kernel_size, **conv_kwargs, **hyperparams.conv_kwargs()
        )
    layers = [
        *padding,
        conv,
        hyperparams.batch_norm_layer(name=f"{name}_batchnorm"),
        hyperparams.activation_layer(name=name),
    ]
    return [layer for layer in layers if layer is not None]
