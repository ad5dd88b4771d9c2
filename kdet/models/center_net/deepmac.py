"""DeepMAC instance masks for CenterNet (TF OD API `deepmac_mask_estimation`).

DeepMAC ("The surprising impact of mask-head architecture on novel class segmentation",
Birodkar et al., 2021) adds two embedding heads to CenterNet (an instance embedding read at
each object's center, a pixel embedding cropped by each object's box) and a class-agnostic
mask network that turns the two into the object's mask logits. It trains on ground-truth
boxes (masks only of `allowed_masked_classes_ids`), and predicts a mask in each detected box.

Shapes: `B` images, `N` boxes per image, `M` instances (boxes over the batch), `S` =
`mask_size`, `h, w` the output map, `D` = `dim`, `P` = `pixel_embedding_dim`.
"""

import keras
import tensorflow as tf

from kdet.data.augmentation.geometric import JITTER_MODES
from kdet.data.augmentation.geometric import random_jitter_boxes
from kdet.feature_extractors.hourglass_network import ConvBlock
from kdet.feature_extractors.hourglass_network import HourglassModule
from kdet.feature_extractors.hourglass_network import ResidualBlock
from kdet.feature_extractors.hourglass_network import build_blocks
from kdet.feature_extractors.resnet_v1_basic_body import _basic_block
from kdet.layers.crop_and_resize_roi_pooler import CropAndResizeRoIPooler
from kdet.losses.weighted_sigmoid_classification_loss import WeightedSigmoidClassificationLoss

# `hourglassN` mask networks (TF OD API `hourglass_network.hourglass_N` with
# `initial_downsample=False`): blocks per stage and channel multipliers of `num_init_channels`.
HOURGLASS_MASK_NETWORKS = {
    "hourglass10": ((1, 1), (2, 2)),
    "hourglass20": ((1, 2, 2), (2, 2, 3)),
    "hourglass32": ((2, 2, 2, 2), (2, 2, 3, 3)),
    "hourglass52": ((2, 2, 2, 2, 2, 4), (2, 2, 3, 3, 3, 4)),
    "hourglass100": ((4, 4, 4, 4, 4, 8), (2, 2, 3, 3, 3, 4)),
}
# `resnetN` mask networks (TF OD API `ResNetMaskNetwork`): basic blocks and channel multipliers
# of `num_init_channels` of each stack.
RESNET_MASK_NETWORKS = {
    "resnet4": ((2,), (2,)),
    "resnet8": ((4,), (2,)),
    "resnet12": ((6,), (2,)),
    "resnet16": ((8,), (2,)),
    "resnet20": ((8, 2), (2, 3)),
}
#: The `network_type`s kdet builds.
MASK_NETWORK_TYPES = (
    tuple(HOURGLASS_MASK_NETWORKS) + tuple(RESNET_MASK_NETWORKS)
    + ("fully_connected", "embedding_projection")
)
# Hidden units of the first layer of the `fully_connected` mask network (a TF OD API constant).
FULLY_CONNECTED_UNITS = 1024


@keras.saving.register_keras_serializable(package="kdet")
class DeepMACMaskNetwork(keras.layers.Layer):
    """The mask network of DeepMAC: per-instance inputs → mask logits (TF OD API
    `MaskHeadNetwork`).

    The instance embedding is tiled over the crop and concatenated after the pixel inputs
    (`use_instance_embedding`), the network of `network_type` runs, and a 1x1 convolution
    makes one channel of it when it has more:
    - `"hourglass10"` … `"hourglass100"`: a 3x3 `ConvBlock` of `num_init_channels`, a
      `ResidualBlock` to twice that, one hourglass (`kdet.feature_extractors.
      hourglass_network.HourglassModule`, stages of `HOURGLASS_MASK_NETWORKS`), a 3x3
      `ConvBlock`; `S` must be a multiple of `2 ** stages` (32 for hourglass52 / 100);
    - `"resnet4"` … `"resnet20"`: a 1x1 convolution of `num_init_channels`, then stacks of
      the TF OD API's pre-activation basic blocks (`RESNET_MASK_NETWORKS`);
    - `"fully_connected"`: a 1x1 convolution of `num_init_channels`, flattened, a dense layer
      of 1024 ReLU units and one of `S * S` logits;
    - `"embedding_projection"`: no weights: the dot product of the pixel inputs with the
      instance embedding (then `use_instance_embedding` must be False, and the two must
      have as many channels).

    Args:
        network_type: one of `MASK_NETWORK_TYPES`. Defaults to `"hourglass52"`.
        num_init_channels: int. Defaults to `64`.
        use_instance_embedding: bool. Defaults to `True`.
        mask_size: int `S` (needed by `"fully_connected"`). Defaults to `32`.
        **kwargs: passed to `keras.layers.Layer`.

    Call args:
        instance_embedding: float `[M, D]`.
        pixel_inputs: float `[M, S, S, C]` (the cropped pixel embedding, with `(y, x)` first
            when the model `use_xy`).
        training: bool.

    Returns:
        float32 `[M, S, S]` mask logits.
    """

    def __init__(self, network_type="hourglass52", num_init_channels=64,
                 use_instance_embedding=True, mask_size=32, **kwargs):
        super().__init__(**kwargs)
        check_mask_network(network_type, mask_size, use_instance_embedding)
        self.network_type = network_type
        self.num_init_channels = int(num_init_channels)
        self.use_instance_embedding = bool(use_instance_embedding)
        self.mask_size = int(mask_size)
        channels = self.num_init_channels
        self.blocks = []
        self.project_out = None
        if network_type in HOURGLASS_MASK_NETWORKS:
            blocks, multipliers = HOURGLASS_MASK_NETWORKS[network_type]
            dims = [multiplier * channels for multiplier in multipliers]
            self.blocks = [
                ConvBlock(channels, 3), ResidualBlock(dims[0]), HourglassModule(dims, blocks),
                ConvBlock(dims[0], 3),
            ]
        elif network_type in RESNET_MASK_NETWORKS:
            self.input_conv = keras.layers.Conv2D(channels, 1, name="input_conv")
            self.resnet = _resnet_stacks(network_type, channels)
        elif network_type == "fully_connected":
            self.input_conv = keras.layers.Conv2D(channels, 1, name="input_conv")
            self.hidden = keras.layers.Dense(FULLY_CONNECTED_UNITS, activation="relu",
                                             name="fc1")
            self.logits = keras.layers.Dense(self.mask_size ** 2, name="fc2")
        if network_type not in ("fully_connected", "embedding_projection"):
            self.project_out = keras.layers.Conv2D(1, 1, name="project_out")

    def build(self, instance_embedding_shape, pixel_inputs_shape):
        # Explicit builds (a symbolic trace of an hourglass is much slower), also called by
        # the model at construction: the network runs only in training and post-processing.
        channels = pixel_inputs_shape[-1] + (
            instance_embedding_shape[-1] if self.use_instance_embedding else 0
        )
        shape = (None, self.mask_size, self.mask_size, channels)
        if self.blocks:
            shape = build_blocks(self.blocks, shape)
        elif self.network_type in RESNET_MASK_NETWORKS:
            self.input_conv.build(shape)
            shape = self.resnet.output_shape
        elif self.network_type == "fully_connected":
            self.input_conv.build(shape)
            self.hidden.build((None, self.mask_size ** 2 * self.num_init_channels))
            self.logits.build((None, FULLY_CONNECTED_UNITS))
        if self.project_out is not None:
            self.project_out.build(shape)
        self.built = True

    def call(self, instance_embedding, pixel_inputs, training=None):
        inputs = pixel_inputs
        if self.use_instance_embedding:
            size = tf.shape(pixel_inputs)[1:3]
            tiled = tf.tile(instance_embedding[:, None, None, :], [1, size[0], size[1], 1])
            inputs = tf.concat([pixel_inputs, tf.cast(tiled, pixel_inputs.dtype)], axis=-1)
        if self.network_type == "embedding_projection":
            outputs = tf.reduce_sum(
                inputs * instance_embedding[:, None, None, :], axis=-1, keepdims=True
            )
        elif self.network_type == "fully_connected":
            features = self.input_conv(inputs)
            flat = tf.reshape(features, [tf.shape(features)[0], -1])
            outputs = tf.reshape(self.logits(self.hidden(flat)),
                                 [-1, self.mask_size, self.mask_size, 1])
        elif self.blocks:
            outputs = inputs
            for block in self.blocks:
                outputs = block(outputs, training=training)
        else:
            outputs = self.resnet(self.input_conv(inputs), training=training)
        if self.project_out is not None:
            outputs = self.project_out(outputs)
        return tf.cast(outputs[..., 0], tf.float32)

    def get_config(self):
        return {
            **super().get_config(),
            "network_type": self.network_type,
            "num_init_channels": self.num_init_channels,
            "use_instance_embedding": self.use_instance_embedding,
            "mask_size": self.mask_size,
        }


def check_mask_network(network_type, mask_size, use_instance_embedding):
    """Raises a `ValueError` saying why a `DeepMACMaskNetwork` of these arguments cannot be."""
    if network_type not in MASK_NETWORK_TYPES:
        raise ValueError(
            f"network_type must be one of {list(MASK_NETWORK_TYPES)}; got {network_type!r}"
        )
    if network_type == "embedding_projection" and use_instance_embedding:
        raise ValueError(
            "network_type 'embedding_projection' has no weights to read the instance "
            "embedding with: use_instance_embedding must be False"
        )
    if network_type in HOURGLASS_MASK_NETWORKS:
        halvings = len(HOURGLASS_MASK_NETWORKS[network_type][0]) - 1
        if mask_size % 2 ** halvings:
            raise ValueError(
                f"network_type {network_type!r} halves the mask {halvings} times: mask_size "
                f"must be a multiple of {2 ** halvings}; got {mask_size}"
            )


def _resnet_stacks(network_type, channels):
    """The basic-block stacks of a `resnetN` mask network, as a functional model (TF OD API
    `resnet_v1.stack_basic` with `stride1=1`: a 1x1 convolution shortcut in each stack's
    first block)."""
    blocks, multipliers = RESNET_MASK_NETWORKS[network_type]
    inputs = keras.Input([None, None, channels])
    outputs = inputs
    for stack, (num_blocks, multiplier) in enumerate(zip(blocks, multipliers)):
        for index in range(1, num_blocks + 1):
            outputs = _basic_block(outputs, multiplier * channels, 1, index == 1,
                                   f"resnet_mask_block_{stack}_block{index}")
    return keras.Model(inputs, outputs, name=f"{network_type}_mask_network")


@keras.saving.register_keras_serializable(package="kdet")
class DeepMACMaskTask:
    """What a `kdet.CenterNet` learns and predicts for DeepMAC instance masks.

    The fields of the TF OD API `CenterNet.DeepMACMaskEstimation` message that kdet honours,
    with its defaults. The model gets an instance-embedding head (`dim` channels) and a
    pixel-embedding head (`pixel_embedding_dim`) per feature map and one
    `DeepMACMaskNetwork`. For each object the pixel embedding is cropped by its box to
    `mask_size` x `mask_size` (bilinear, `tf.image.crop_and_resize`), with the crop's
    `(y, x)` coordinates (-1 … 1) put first when `use_xy`, and the instance embedding is read
    at the box center's cell; the mask network turns them into mask logits.

    Training runs it on the ground-truth boxes (the mask network sees the real rows only),
    against the ground-truth masks cropped by the same boxes: `classification_loss` per pixel,
    averaged over the mask's pixels (a per-instance loss such as Dice: as it is), summed over
    the objects of `allowed_masked_classes_ids` (all when empty) and divided by their number
    over the global batch; averaged over the feature maps (the last only with
    `use_only_last_stage`), times `task_loss_weight`: the `deep_mask_estimation_loss`.
    Inference runs it on the detected boxes of the last feature map; the sigmoid gives
    `"box_masks"`, pasted into the image as `"masks"`.

    Args:
        classification_loss: the per-pixel loss (a kdet classification loss, or
            `kdet.losses.WeightedDiceClassificationLoss`). Defaults to
            `kdet.losses.WeightedSigmoidClassificationLoss()`.
        task_loss_weight: float. Defaults to `1.0`.
        dim: int `D`, channels of the instance embedding. Defaults to `256`.
        pixel_embedding_dim: int `P`. Defaults to `16`.
        allowed_masked_classes_ids: label-map ids whose masks train the network (empty:
            all). Defaults to none.
        mask_size: int `S`. Defaults to `32`.
        use_xy: bool, the crop's coordinates as two more input channels. Defaults to `True`.
        network_type: see `DeepMACMaskNetwork`. Defaults to `"hourglass52"`.
        use_instance_embedding: bool. Defaults to `True`.
        num_init_channels: int, channels of the mask network's first block. Defaults to `64`.
        use_only_last_stage: bool, train masks on the last feature map only. Defaults to
            `False`.
        max_roi_jitter_ratio: float. In training, the boxes that crop the ground-truth masks
            (not the embeddings) are jittered by up to this fraction of their size, as the
            TF OD API does (`kdet.data.augmentation.random_jitter_boxes`). Defaults to `0.0`.
        jitter_mode: one of the TF OD API's `RandomJitterBoxes.JitterMode` names (e.g.
            `"DEFAULT"`, `"EXPAND"`, `"SHRINK_SYMMETRIC"`). Defaults to `"DEFAULT"`.
        embedding_head_num_filters, embedding_head_kernel_sizes: hidden convolutions of the
            two embedding heads (not in the TF OD API config: its `[256]` and `[3]`).

    Example:
    ```python
    masks = kdet.models.center_net.DeepMACMaskTask(dim=32, network_type="hourglass52")
    model = kdet.CenterNet(90, "hourglass_104", mask_task=masks)
    model.fit(images, {"boxes": boxes, "labels": labels, "masks": masks})
    model.predict(images)["masks"]   # [B, 100, H, W] probabilities
    ```
    """

    def __init__(
        self,
        classification_loss=None,
        task_loss_weight=1.0,
        dim=256,
        pixel_embedding_dim=16,
        allowed_masked_classes_ids=(),
        mask_size=32,
        use_xy=True,
        network_type="hourglass52",
        use_instance_embedding=True,
        num_init_channels=64,
        use_only_last_stage=False,
        max_roi_jitter_ratio=0.0,
        jitter_mode="DEFAULT",
        embedding_head_num_filters=(256,),
        embedding_head_kernel_sizes=(3,),
    ):
        if isinstance(classification_loss, dict):
            classification_loss = keras.saving.deserialize_keras_object(classification_loss)
        self.classification_loss = classification_loss or WeightedSigmoidClassificationLoss()
        self.task_loss_weight = task_loss_weight
        self.dim = int(dim)
        self.pixel_embedding_dim = int(pixel_embedding_dim)
        self.allowed_masked_classes_ids = [int(i) for i in allowed_masked_classes_ids]
        self.mask_size = int(mask_size)
        self.use_xy = bool(use_xy)
        self.network_type = network_type
        self.use_instance_embedding = bool(use_instance_embedding)
        self.num_init_channels = int(num_init_channels)
        self.use_only_last_stage = bool(use_only_last_stage)
        self.max_roi_jitter_ratio = float(max_roi_jitter_ratio)
        if str(jitter_mode).upper() not in JITTER_MODES:
            raise ValueError(f"jitter_mode must be one of {JITTER_MODES}; got {jitter_mode!r}")
        self.jitter_mode = str(jitter_mode).upper()
        self.embedding_head_num_filters = list(embedding_head_num_filters)
        self.embedding_head_kernel_sizes = list(embedding_head_kernel_sizes)
        self._crop = CropAndResizeRoIPooler(self.mask_size, 1, 1)
        check_mask_network(network_type, self.mask_size, self.use_instance_embedding)
        if network_type == "embedding_projection":
            if self.use_xy:
                raise ValueError("network_type 'embedding_projection' needs use_xy False")
            if self.dim != self.pixel_embedding_dim:
                raise ValueError(
                    f"network_type 'embedding_projection' needs pixel_embedding_dim "
                    f"({self.pixel_embedding_dim}) equal to dim ({self.dim})"
                )

    loss_name = "deep_mask_estimation_loss"

    def make_mask_network(self):
        """A new `DeepMACMaskNetwork` of the task, built."""
        network = DeepMACMaskNetwork(self.network_type, self.num_init_channels,
                                     self.use_instance_embedding, self.mask_size,
                                     name="deepmac_mask_network")
        pixel_channels = self.pixel_embedding_dim + (2 if self.use_xy else 0)
        network.build((None, self.dim), (None, self.mask_size, self.mask_size, pixel_channels))
        return network

    def mask_logits(self, network, pixel_embedding, instance_embedding, boxes, rows=None,
                    training=None):
        """Mask logits of boxes from one feature map's embeddings.

        Args:
            network: the model's `DeepMACMaskNetwork`.
            pixel_embedding: float `[B, h, w, P]`; instance_embedding: float `[B, h, w, D]`.
            boxes: float `[B, N, 4]` `rel_yxyx` of the map's frame.
            rows: optional int `[M]`, the rows of the flattened `[B * N]` boxes to predict.

        Returns:
            float32 `[B, N, S, S]`, or `[M, S, S]` with `rows`.
        """
        size = self.mask_size
        crops = self._crop(pixel_embedding, boxes)  # [B, N, S, S, P]
        if self.use_xy:
            grid = tf.linspace(-1.0, 1.0, size)
            y, x = tf.meshgrid(grid, grid, indexing="ij")
            coordinates = tf.broadcast_to(
                tf.stack([y, x], axis=-1), tf.concat([tf.shape(crops)[:2], [size, size, 2]], 0)
            )
            crops = tf.concat([tf.cast(coordinates, crops.dtype), crops], axis=-1)
        centers = center_embeddings(instance_embedding, boxes)  # [B, N, D]
        shape = tf.shape(boxes)
        crops = tf.reshape(crops, [-1, size, size, crops.shape[-1]])
        centers = tf.reshape(centers, [-1, centers.shape[-1]])
        if rows is not None:
            crops, centers = tf.gather(crops, rows), tf.gather(centers, rows)
        logits = network(centers, crops, training=training)
        if rows is not None:
            return logits
        return tf.reshape(logits, [shape[0], shape[1], size, size])

    def target_boxes(self, boxes, training):
        """The boxes `[B, N, 4]` that crop the ground-truth masks: `boxes`, jittered in
        training when `max_roi_jitter_ratio` > 0."""
        if not training or self.max_roi_jitter_ratio <= 0.0:
            return boxes
        _, jittered, _ = random_jitter_boxes(
            None, tf.reshape(boxes, [-1, 4]), None, self.max_roi_jitter_ratio, self.jitter_mode
        )
        return tf.reshape(jittered, tf.shape(boxes))

    def instance_losses(self, logits, targets):
        """Per-instance loss of mask logits `[M, S, S]` against targets `[M, S, S]` → `[M]`."""
        pixels = self.mask_size * self.mask_size
        flat_logits = tf.reshape(logits, [-1, pixels, 1])
        flat_targets = tf.reshape(tf.cast(targets, tf.float32), [-1, pixels, 1])
        losses = self.classification_loss(flat_logits, flat_targets, tf.ones_like(
            flat_logits[..., 0]))
        return tf.reduce_mean(losses, axis=-1) if losses.shape.rank == 2 else losses

    def loss_weights(self, labels):
        """float32 `[...]`: 1 for the objects whose masks train (real rows of
        `allowed_masked_classes_ids`, or of every class when it is empty), of labels `[...]`."""
        real = labels > 0
        if self.allowed_masked_classes_ids:
            allowed = tf.constant(self.allowed_masked_classes_ids, tf.int32)
            real &= tf.reduce_any(tf.equal(labels[..., None], allowed), axis=-1)
        return tf.cast(real, tf.float32)

    def get_config(self):
        config = {
            name: getattr(self, name)
            for name in (
                "task_loss_weight", "dim", "pixel_embedding_dim", "allowed_masked_classes_ids",
                "mask_size", "use_xy", "network_type", "use_instance_embedding",
                "num_init_channels", "use_only_last_stage", "max_roi_jitter_ratio",
                "jitter_mode", "embedding_head_num_filters",
                "embedding_head_kernel_sizes",
            )
        }
        config["classification_loss"] = keras.saving.serialize_keras_object(
            self.classification_loss
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def center_embeddings(instance_embedding, boxes):
    """The instance embedding at each box center's cell (floored, clipped to the map).

    Args:
        instance_embedding: float `[B, h, w, D]`.
        boxes: float `[B, N, 4]` `rel_yxyx` of the map's frame.

    Returns:
        `[B, N, D]`.
    """
    shape = tf.shape(instance_embedding)
    size = tf.cast(shape[1:3], tf.float32)
    centers = (boxes[..., 0:2] + boxes[..., 2:4]) / 2.0 * size
    cells = tf.clip_by_value(tf.cast(tf.floor(centers), tf.int32), 0, shape[1:3] - 1)
    return tf.gather_nd(instance_embedding, cells, batch_dims=1)
