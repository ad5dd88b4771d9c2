"""Hourglass feature extractors of CenterNet: `hourglass_10` … `hourglass_104`."""

import keras

from kdet.feature_extractors.center_net_feature_extractor import CenterNetFeatureExtractor
from kdet.feature_extractors.hourglass_network import HourglassNetwork
from kdet.feature_extractors.registry import register_feature_extractor

# The stride of the maps the hourglasses run on (and return).
HOURGLASS_OUT_STRIDE = 4
_NETWORK_ARGUMENTS = ("input_channel_dims", "channel_dims", "blocks_per_stage", "num_hourglasses")


@keras.saving.register_keras_serializable(package="kdet")
class CenterNetHourglassFeatureExtractor(CenterNetFeatureExtractor):
    """A `kdet.feature_extractors.hourglass_network.HourglassNetwork` as a CenterNet extractor.

    The TF OD API's `CenterNetHourglassFeatureExtractor`: preprocessing is only the base
    class's `channel_means` / `channel_stds` / `bgr_ordering`; `call` returns one stride-4 map
    of `channel_dims[0]` channels per stacked hourglass. The registered `hourglass_10` …
    `hourglass_104` are this class with the TF OD API's sizes.

    Args:
        input_channel_dims: int, channels of the first (7x7 stride-2) convolution.
        channel_dims: list of ints, channels of the hourglass stages, outermost first.
        blocks_per_stage: list of ints (same length), residual blocks per stage.
        num_hourglasses: int, hourglasses stacked (one output each). Defaults to `1`.
        **kwargs: `channel_means`, `channel_stds`, `bgr_ordering` (see
            `CenterNetFeatureExtractor`) and `keras.layers.Layer` arguments.

    Input height and width must be multiples of `input_multiple`
    (`4 * 2 ** (len(channel_dims) - 1)`: 128 for Hourglass-104 and -52).
    """

    def __init__(
        self, input_channel_dims, channel_dims, blocks_per_stage, num_hourglasses=1, **kwargs
    ):
        super().__init__(**kwargs)
        self.input_channel_dims = int(input_channel_dims)
        self.channel_dims = [int(dims) for dims in channel_dims]
        self.blocks_per_stage = [int(blocks) for blocks in blocks_per_stage]
        self.num_hourglasses = int(num_hourglasses)
        self.network = HourglassNetwork(
            self.input_channel_dims,
            self.channel_dims,
            self.blocks_per_stage,
            self.num_hourglasses,
            name="hourglass_network",
        )

    @property
    def out_stride(self):
        return HOURGLASS_OUT_STRIDE

    @property
    def num_feature_outputs(self):
        return self.num_hourglasses

    @property
    def input_multiple(self):
        """Input heights and widths must be multiples of it: every stage halves the maps."""
        return HOURGLASS_OUT_STRIDE * 2 ** (len(self.channel_dims) - 1)

    def build(self, input_shape):
        self.network.build(input_shape)

    def call(self, images, training=None):
        """Preprocessed images `[batch, height, width, 3]` → list of `num_hourglasses` maps
        `[batch, height / 4, width / 4, channel_dims[0]]`, the last hourglass's last."""
        for axis, size in (("height", images.shape[1]), ("width", images.shape[2])):
            if size is not None and size % self.input_multiple:
                raise ValueError(
                    f"{type(self).__name__} needs image {axis}s that are multiples of "
                    f"{self.input_multiple} (stride 4, then {len(self.channel_dims) - 1} "
                    f"halvings); got {size}. Resize or pad the images (e.g. the image "
                    "resizer's pad_to_max_dimension, or pad_to_multiple)"
                )
        return self.network(images, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_channel_dims": self.input_channel_dims,
                "channel_dims": list(self.channel_dims),
                "blocks_per_stage": list(self.blocks_per_stage),
                "num_hourglasses": self.num_hourglasses,
            }
        )
        return config


class _SizedHourglassFeatureExtractor(CenterNetHourglassFeatureExtractor):
    """An hourglass of the TF OD API family: `num_channels` and class constants set it up.

    Stages have `CHANNEL_MULTIPLIERS × num_channels` channels and `BLOCKS_PER_STAGE` blocks,
    the first convolution `num_channels`, as the TF OD API's `hourglass_network.hourglass_N`.
    """

    DEFAULT_NUM_CHANNELS = None
    CHANNEL_MULTIPLIERS = ()
    BLOCKS_PER_STAGE = ()
    NUM_HOURGLASSES = 1

    def __init__(self, num_channels=None, **kwargs):
        self.num_channels = int(num_channels or self.DEFAULT_NUM_CHANNELS)
        super().__init__(
            input_channel_dims=self.num_channels,
            channel_dims=[multiplier * self.num_channels for multiplier in self.CHANNEL_MULTIPLIERS],
            blocks_per_stage=list(self.BLOCKS_PER_STAGE),
            num_hourglasses=self.NUM_HOURGLASSES,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        for argument in _NETWORK_ARGUMENTS:
            del config[argument]
        config["num_channels"] = self.num_channels
        return config


@register_feature_extractor("hourglass_10")
class CenterNetHourglass10FeatureExtractor(_SizedHourglassFeatureExtractor):
    """Hourglass-10 (TF OD API `hourglass_10`): one hourglass of 1 stage, channels
    `[2, 2] × num_channels` (default 32), 1 residual block per stage.

    Args:
        num_channels: int, channels of the first convolution. Defaults to the TF OD API's.
        **kwargs: see `CenterNetHourglassFeatureExtractor`.
    """

    DEFAULT_NUM_CHANNELS = 32
    CHANNEL_MULTIPLIERS = (2, 2)
    BLOCKS_PER_STAGE = (1, 1)


@register_feature_extractor("hourglass_20")
class CenterNetHourglass20FeatureExtractor(_SizedHourglassFeatureExtractor):
    """Hourglass-20 (TF OD API `hourglass_20`): one hourglass of 2 stages, channels
    `[2, 2, 3] × num_channels` (default 48), blocks `[1, 2, 2]`.

    Args:
        num_channels: int, channels of the first convolution. Defaults to the TF OD API's.
        **kwargs: see `CenterNetHourglassFeatureExtractor`.
    """

    DEFAULT_NUM_CHANNELS = 48
    CHANNEL_MULTIPLIERS = (2, 2, 3)
    BLOCKS_PER_STAGE = (1, 2, 2)


@register_feature_extractor("hourglass_32")
class CenterNetHourglass32FeatureExtractor(_SizedHourglassFeatureExtractor):
    """Hourglass-32 (TF OD API `hourglass_32`): one hourglass of 3 stages, channels
    `[2, 2, 3, 3] × num_channels` (default 48), 2 blocks per stage.

    Args:
        num_channels: int, channels of the first convolution. Defaults to the TF OD API's.
        **kwargs: see `CenterNetHourglassFeatureExtractor`.
    """

    DEFAULT_NUM_CHANNELS = 48
    CHANNEL_MULTIPLIERS = (2, 2, 3, 3)
    BLOCKS_PER_STAGE = (2, 2, 2, 2)


@register_feature_extractor("hourglass_52")
class CenterNetHourglass52FeatureExtractor(_SizedHourglassFeatureExtractor):
    """Hourglass-52 (TF OD API `hourglass_52`): one hourglass of 5 stages, channels
    `[2, 2, 3, 3, 3, 4] × num_channels` (default 64), blocks `[2, 2, 2, 2, 2, 4]`.

    Args:
        num_channels: int, channels of the first convolution. Defaults to the TF OD API's.
        **kwargs: see `CenterNetHourglassFeatureExtractor`.
    """

    DEFAULT_NUM_CHANNELS = 64
    CHANNEL_MULTIPLIERS = (2, 2, 3, 3, 3, 4)
    BLOCKS_PER_STAGE = (2, 2, 2, 2, 2, 4)


@register_feature_extractor("hourglass_104")
class CenterNetHourglass104FeatureExtractor(_SizedHourglassFeatureExtractor):
    """Hourglass-104 (TF OD API `hourglass_104`, CenterNet's and CornerNet's): two stacked
    hourglasses of 5 stages, channels `[2, 2, 3, 3, 3, 4] × num_channels` (default 128:
    256..512), blocks `[2, 2, 2, 2, 2, 4]`; two outputs (the first for intermediate
    supervision).

    Args:
        num_channels: int, channels of the first convolution. Defaults to the TF OD API's.
        **kwargs: see `CenterNetHourglassFeatureExtractor`.
    """

    DEFAULT_NUM_CHANNELS = 128
    CHANNEL_MULTIPLIERS = (2, 2, 3, 3, 3, 4)
    BLOCKS_PER_STAGE = (2, 2, 2, 2, 2, 4)
    NUM_HOURGLASSES = 2
