"""A tiny CenterNet feature extractor and model builders for the CenterNet tests."""

import keras
import numpy as np

import kdet
from kdet.feature_extractors import CenterNetFeatureExtractor
from kdet.layers import FixedShapeResizer
from kdet.models.center_net import KeypointEstimationTask


@keras.saving.register_keras_serializable(package="kdet_tests")
class TinyCenterNetExtractor(CenterNetFeatureExtractor):
    """Two stride-2 and `depth` stride-1 3x3 convolutions (stride 4; batch norm after each with
    `batch_norm`), then one 3x3 convolution per feature output (each reading the previous one,
    as Hourglass-104's stacks do)."""

    def __init__(self, filters=16, num_outputs=1, batch_norm=True, depth=0, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_outputs = num_outputs
        self.batch_norm = batch_norm
        self.depth = depth
        self.body = []
        for strides in [2, 2] + [1] * depth:
            self.body.append(keras.layers.Conv2D(filters, 3, strides=strides, padding="same",
                                                 activation="relu"))
            if batch_norm:
                self.body.append(keras.layers.BatchNormalization(momentum=0.9))
        self.stacks = [
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu")
            for _ in range(num_outputs)
        ]

    @property
    def out_stride(self):
        return 4

    @property
    def num_feature_outputs(self):
        return self.num_outputs

    def call(self, images, training=None):
        features = images
        for layer in self.body:
            features = layer(features, training=training)
        outputs = []
        for layer in self.stacks:
            features = layer(features)
            outputs.append(features)
        return outputs

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "num_outputs": self.num_outputs,
                "batch_norm": self.batch_norm, "depth": self.depth}


HEAD = {"num_filters": [16], "kernel_sizes": [3]}


def corner_keypoints(y):
    """`y` with the top-left and bottom-right corners of each box as its keypoints (labelled
    for every real box)."""
    boxes = y["boxes"]
    keypoints = np.stack([boxes[..., 0:2], boxes[..., 2:4]], axis=2).astype(np.float32)
    visibilities = np.repeat((y["labels"] > 0)[..., None], 2, axis=-1).astype(np.int32)
    return {**y, "keypoints": keypoints, "keypoint_visibilities": visibilities}


def corners_task(**kwargs):
    """Keypoint task of class 1: the top-left and bottom-right box corners."""
    head = {
        f"{name}_head_{field}": value
        for name in ("heatmap", "offset", "regress")
        for field, value in HEAD.items()
    }
    return KeypointEstimationTask(
        "corners", 1, [0, 1], keypoint_labels=["top_left", "bottom_right"], **{**head, **kwargs}
    )


def tiny_center_net(num_classes=2, image_size=64, num_outputs=1, keypoint_tasks=(), filters=16,
                    batch_norm=True, depth=0, **kwargs):
    """A CenterNet on `TinyCenterNetExtractor` with 16-filter heads and a fixed-size resizer."""
    heads = {
        f"{name}_head_{field}": value
        for name in ("center", "scale", "offset")
        for field, value in HEAD.items()
    }
    return kdet.CenterNet(
        num_classes,
        TinyCenterNetExtractor(filters=filters, num_outputs=num_outputs, batch_norm=batch_norm,
                               depth=depth, channel_means=(127.5,) * 3, channel_stds=(127.5,) * 3),
        image_resizer=FixedShapeResizer(image_size, image_size),
        keypoint_tasks=keypoint_tasks,
        **{**heads, **kwargs},
    )
