"""SSD(Lite) feature extractors on the mobile bodies: MobileNetV3 Large / Small, MobileNet
EdgeTPU and MobileDet CPU / DSP / EdgeTPU / GPU.

Each is the TF OD API's TF1 extractor of the same name (`ssd_mobilenet_v3_feature_extractor.py`,
`ssd_mobilenet_edgetpu_feature_extractor.py`, `ssd_mobiledet_feature_extractor.py`): two body
maps (strides 16 and 32) and four extra maps (`multi_resolution_feature_maps`, depths 512,
256, 256, 128) grown from the second. One class, `SSDMobileFeatureExtractor`, does it for
every body; each registered name is a subclass naming its body in `BODY`.
"""

import keras

from kdet.feature_extractors.mobiledet_body import mobiledet_body
from kdet.feature_extractors.mobilenet_v3_body import MOBILENET_EDGETPU
from kdet.feature_extractors.mobilenet_v3_body import MOBILENET_V3_LARGE_DETECTION
from kdet.feature_extractors.mobilenet_v3_body import MOBILENET_V3_SMALL_DETECTION
from kdet.feature_extractors.mobilenet_v3_body import mobilenet_v3_body
from kdet.feature_extractors.multi_resolution_feature_maps import SSDMultiResolutionFeatureExtractor
from kdet.feature_extractors.multi_resolution_feature_maps import extra_feature_map_layers
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_v2_feature_extractor import DEFAULT_CONV_HYPERPARAMS
from kdet.layers.conv_hyperparams import ConvHyperparams

# Depths of the four extra feature maps (TF OD API feature_map_layout `layer_depth`).
EXTRA_LAYER_DEPTHS = (512, 256, 256, 128)
# Each body: its table (MobileNetV3 family) or MobileDet variant, TF1 scope, the body maps
# (row index, "output" / "expansion") and the TF1 name of the map the extra layers grow from.
BODIES = {
    "mobilenet_v3_large": {
        "table": MOBILENET_V3_LARGE_DETECTION, "scope": "MobilenetV3",
        "endpoints": [(13, "expansion"), (16, "output")], "base_name": "layer_17",
    },
    "mobilenet_v3_small": {
        "table": MOBILENET_V3_SMALL_DETECTION, "scope": "MobilenetV3",
        "endpoints": [(9, "expansion"), (12, "output")], "base_name": "layer_13",
    },
    "mobilenet_edgetpu": {
        "table": MOBILENET_EDGETPU, "scope": "MobilenetEdgeTPU",
        "endpoints": [(17, "expansion"), (22, "output")], "base_name": "layer_23",
    },
    "mobiledet_cpu": {"variant": "cpu", "scope": "MobileDetCPU", "base_name": "C5"},
    "mobiledet_dsp": {"variant": "dsp", "scope": "MobileDetDSP", "base_name": "C5"},
    "mobiledet_edgetpu": {"variant": "edgetpu", "scope": "MobileDetEdgeTPU", "base_name": "C5"},
    "mobiledet_gpu": {"variant": "gpu", "scope": "MobileDetGPU", "base_name": "C5"},
}
# The MobileNetV3 / EdgeTPU body's own settings without
# override_base_feature_extractor_hyperparams (slim `mobilenet.training_scope(bn_decay=0.9997)`):
# truncated normal kernels of stddev 0.09, batch norm decay 0.9997 and epsilon 1e-3.
_MOBILENET_KERNEL_STDDEV = 0.09
_MOBILENET_BATCH_NORM = {"momentum": 0.9997, "epsilon": 1e-3, "center": True, "scale": True}


class SSDMobileFeatureExtractor(SSDMultiResolutionFeatureExtractor):
    """A mobile body's two maps (strides 16 and 32) and four extra maps: SSDLite on
    MobileNetV3, MobileNet EdgeTPU or MobileDet.

    The bodies are built from tables (`kdet.feature_extractors.mobilenet_v3_body`,
    `kdet.feature_extractors.mobiledet_body`) in TF-Slim's layout, so TF1 checkpoints map by
    name. Body maps, as the TF OD API picks them:

    | body | maps | at 320×320, depth multiplier 1 |
    |---|---|---|
    | `mobilenet_v3_large` | `layer_14/expansion_output`, `layer_17` | 20² × 672, 10² × 480 |
    | `mobilenet_v3_small` | `layer_10/expansion_output`, `layer_13` | 20² × 288, 10² × 288 |
    | `mobilenet_edgetpu` | `layer_18/expansion_output`, `layer_23` | 20² × 384, 10² × 192 |
    | `mobiledet_*` | `C4`, `C5` | e.g. CPU 20² × 72, 10² × 144 |

    The extra maps (`kdet.feature_extractors.multi_resolution_feature_maps`) are named after
    the second map (`layer_17_1_Conv2d_2_1x1_256`, `C5_2_Conv2d_5_3x3_s2_128_depthwise`, …)
    and set up by `conv_hyperparams`. The MobileNetV3 / EdgeTPU body keeps slim's own
    hyperparams (kernels `TruncatedNormal(0.09)`, batch norm momentum 0.9997, epsilon 1e-3,
    the `conv_hyperparams` regularizer) unless `override_base_feature_extractor_hyperparams`
    (then `conv_hyperparams`' initializer, regularizer and batch norm; the blocks' activations
    stay their own, as in slim). The MobileDet body always has its own (He normal, L2 4e-5,
    batch norm momentum 0.99, epsilon 0.01): the TF OD API ignores the override there too.

    Args:
        depth_multiplier: float, of the body and the extra maps. Defaults to `1.0`.
        min_depth: int. Lower bound of the extra maps' depths and (MobileNetV3 / EdgeTPU) of
            the body's block depths. Defaults to `16`.
        use_depthwise: bool. SSDLite extra maps (depthwise 3x3 + 1x1 instead of a 3x3
            convolution). Defaults to `True`.
        backbone_weights: must be `None`: no Keras ImageNet weights have this layout.
        conv_hyperparams: a `kdet.layers.ConvHyperparams`, or `None` for the SSD MobileNetV2
            default (`DEFAULT_CONV_HYPERPARAMS`). Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. Defaults to `False`.
        use_explicit_padding: must be `False` (the TF OD API's MobileDet refuses it, and its
            MobileNetV3 pads block inputs its residuals then cannot add).
        pad_to_multiple: int. See `kdet.feature_extractors.ssd_feature_extractor`. Defaults
            to `1`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDMobileNetV3LargeFeatureExtractor(
        depth_multiplier=0.25)
    images = extractor.preprocess(tf.zeros([1, 320, 320, 3]))
    [f.shape[1] for f in extractor(images)]  # [20, 10, 5, 3, 2, 1]
    ```

    Reference:
        [Howard et al., 2019](https://arxiv.org/abs/1905.02244) (MobileNetV3);
        [Xiong et al., 2021](https://arxiv.org/abs/2004.14525) (MobileDets).
    """

    # A key of `BODIES`, set by each registered subclass.
    BODY = None

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        use_depthwise=True,
        backbone_weights=None,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        use_explicit_padding=False,
        pad_to_multiple=1,
        **kwargs,
    ):
        if backbone_weights is not None:
            raise ValueError(
                f"{type(self).__name__}: backbone_weights must be None (no Keras ImageNet "
                f"weights have the {self.BODY} layout); load a TF OD API checkpoint instead"
            )
        if use_explicit_padding:
            raise ValueError(
                f"{type(self).__name__}: use_explicit_padding is not supported for the "
                f"{self.BODY} body (the TF OD API's cannot build it either)"
            )
        super().__init__(
            depth_multiplier,
            min_depth,
            bool(use_depthwise),
            use_explicit_padding,
            pad_to_multiple,
            conv_hyperparams,
            DEFAULT_CONV_HYPERPARAMS,
            override_base_feature_extractor_hyperparams,
            **kwargs,
        )
        body = BODIES[self.BODY]
        if "variant" in body:
            self.body = mobiledet_body(body["variant"], body["scope"], depth_multiplier)
        else:
            self.body = mobilenet_v3_body(
                body["table"], body["endpoints"], body["scope"], depth_multiplier, min_depth,
                self._mobilenet_body_hyperparams(),
            )
        self.extra_layers = extra_feature_map_layers(
            body["base_name"], 2, EXTRA_LAYER_DEPTHS, self.conv_hyperparams,
            depth_multiplier, min_depth, use_depthwise=self.use_depthwise,
        )

    def _mobilenet_body_hyperparams(self):
        if self.override_base_feature_extractor_hyperparams:
            return self.conv_hyperparams
        return ConvHyperparams(
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=_MOBILENET_KERNEL_STDDEV
            ),
            kernel_regularizer=self.conv_hyperparams.kernel_regularizer,
            activation=None,
            batch_norm=_MOBILENET_BATCH_NORM,
        )

    def get_config(self):
        config = super().get_config()
        config["use_depthwise"] = self.use_depthwise
        return config


@register_feature_extractor("ssd_mobilenet_v3_large")
class SSDMobileNetV3LargeFeatureExtractor(SSDMobileFeatureExtractor):
    """SSDLite MobileNetV3-Large (TF OD API `ssd_mobilenet_v3_large`); see
    `SSDMobileFeatureExtractor`."""

    BODY = "mobilenet_v3_large"


@register_feature_extractor("ssd_mobilenet_v3_small")
class SSDMobileNetV3SmallFeatureExtractor(SSDMobileFeatureExtractor):
    """SSDLite MobileNetV3-Small (TF OD API `ssd_mobilenet_v3_small`); see
    `SSDMobileFeatureExtractor`."""

    BODY = "mobilenet_v3_small"


@register_feature_extractor("ssd_mobilenet_edgetpu")
class SSDMobileNetEdgeTPUFeatureExtractor(SSDMobileFeatureExtractor):
    """SSDLite MobileNet EdgeTPU (TF OD API `ssd_mobilenet_edgetpu`); see
    `SSDMobileFeatureExtractor`."""

    BODY = "mobilenet_edgetpu"


@register_feature_extractor("ssd_mobiledet_cpu")
class SSDMobileDetCPUFeatureExtractor(SSDMobileFeatureExtractor):
    """SSDLite MobileDet-CPU (TF OD API `ssd_mobiledet_cpu`); see `SSDMobileFeatureExtractor`."""

    BODY = "mobiledet_cpu"


@register_feature_extractor("ssd_mobiledet_dsp")
class SSDMobileDetDSPFeatureExtractor(SSDMobileFeatureExtractor):
    """SSDLite MobileDet-DSP (TF OD API `ssd_mobiledet_dsp`); see `SSDMobileFeatureExtractor`."""

    BODY = "mobiledet_dsp"


@register_feature_extractor("ssd_mobiledet_edgetpu")
class SSDMobileDetEdgeTPUFeatureExtractor(SSDMobileFeatureExtractor):
    """SSDLite MobileDet-EdgeTPU (TF OD API `ssd_mobiledet_edgetpu`); see
    `SSDMobileFeatureExtractor`."""

    BODY = "mobiledet_edgetpu"


@register_feature_extractor("ssd_mobiledet_gpu")
class SSDMobileDetGPUFeatureExtractor(SSDMobileFeatureExtractor):
    """SSDLite MobileDet-GPU (TF OD API `ssd_mobiledet_gpu`); see `SSDMobileFeatureExtractor`."""

    BODY = "mobiledet_gpu"
