"""`CenterNetPredictionHead`: the convolutions that turn a feature map into one CenterNet output."""

import keras


@keras.saving.register_keras_serializable(package="kdet")
class CenterNetPredictionHead(keras.layers.Layer):
    """`len(num_filters)` x (convolution + ReLU), then a 1x1 convolution to `num_outputs`.

    The TF OD API `make_prediction_net` (CenterNet's heads: center heatmap, box size and offset,
    keypoint heatmap, offset and regression), with Keras's default initializers as there.

    Args:
        num_outputs: int. Channels of the output (classes, 2, 2 * keypoints, …).
        num_filters: ints, the filters of each hidden convolution. Defaults to `(256,)`.
        kernel_sizes: ints, their kernel sizes (as many as `num_filters`). Defaults to `(3,)`.
        bias_init: float or None. Initial bias of the output convolution (e.g. -2.19, a
            probability of 0.1 after the sigmoid, for heatmaps); None: zeros.
        use_depthwise: bool. Separable hidden convolutions (the TF OD API `use_depthwise`).
            Defaults to `False`.
        **kwargs: passed to `keras.layers.Layer`.

    Call args:
        features: float `[batch, height, width, channels]`.

    Returns:
        float `[batch, height, width, num_outputs]`.
    """

    def __init__(self, num_outputs, num_filters=(256,), kernel_sizes=(3,), bias_init=None,
                 use_depthwise=False, **kwargs):
        super().__init__(**kwargs)
        num_filters, kernel_sizes = tuple(num_filters), tuple(kernel_sizes)
        if len(num_filters) != len(kernel_sizes):
            raise ValueError(
                f"num_filters {list(num_filters)} and kernel_sizes {list(kernel_sizes)} must have "
                "the same length (one per hidden convolution)"
            )
        self.num_outputs = num_outputs
        self.num_filters = num_filters
        self.kernel_sizes = kernel_sizes
        self.bias_init = bias_init
        self.use_depthwise = use_depthwise
        convolution = keras.layers.SeparableConv2D if use_depthwise else keras.layers.Conv2D
        self.hidden = [
            convolution(filters, kernel_size, padding="same", activation="relu",
                        name=f"conv_{index}")
            for index, (filters, kernel_size) in enumerate(zip(num_filters, kernel_sizes))
        ]
        bias = "zeros" if bias_init is None else keras.initializers.Constant(bias_init)
        self.output_conv = keras.layers.Conv2D(num_outputs, 1, bias_initializer=bias,
                                               name="output")

    def call(self, features):
        for layer in self.hidden:
            features = layer(features)
        return self.output_conv(features)

    def get_config(self):
        return {
            **super().get_config(),
            "num_outputs": self.num_outputs,
            "num_filters": list(self.num_filters),
            "kernel_sizes": list(self.kernel_sizes),
            "bias_init": self.bias_init,
            "use_depthwise": self.use_depthwise,
        }
