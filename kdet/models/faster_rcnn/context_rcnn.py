"""`ContextRCNN`: Faster R-CNN whose box features attend to context features of other images
(Context R-CNN)."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import is_padding
from kdet.data.input_pipeline import CONTEXT_FEATURES
from kdet.data.input_pipeline import VALID_CONTEXT_SIZE
from kdet.data.input_pipeline import pad_context_features
from kdet.layers.image_resizer import RESIZED_IMAGES
from kdet.layers.image_resizer import TRUE_IMAGE_SHAPE
from kdet.models.faster_rcnn.context_attention import ContextAttention
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN

#: Where the attended context is added (TF OD API `AttentionPosition`, lower case).
ATTENTION_POSITIONS = ("post_box_classifier", "post_rpn")

# `context_config` fields the TF OD API's TF2 Context R-CNN refuses (NotImplementedError), with
# the only value it takes.
_TF2_ONLY_VALUES = {
    "use_self_attention": False,
    "use_long_term_attention": True,
    "self_attention_in_sequence": False,
    "num_attention_heads": 1,
    "num_attention_layers": 1,
}


@keras.saving.register_keras_serializable(package="kdet")
class ContextRCNN(FasterRCNN):
    """Context R-CNN: `kdet.FasterRCNN` whose RoIs attend to a memory of context features.

    Each image comes with context features (e.g. box features of other images of the same
    camera, computed beforehand): `[max_num_context_features, context_feature_length]`,
    zero-padded, and its count of real rows. Before the box classifier the RoIs' features,
    averaged over their crop, attend to the image's context features through a
    `ContextAttention` block (one head: `attention_bottleneck_dimension`,
    `attention_temperature`) and the result is added to every cell of each RoI's features:
    after the extractor's box classifier features (`"post_box_classifier"`, the TF OD API
    default) or to the cropped proposal features before it (`"post_rpn"`). The rest is
    Faster R-CNN's. The TF OD API's `ContextRCNNMetaArch` with its TF2 attention block
    (`context_rcnn_lib_tf2.AttentionBlock`), built from a `faster_rcnn { … context_config
    { … } }` config; each `context_config` field is an argument.

    Args:
        num_classes, feature_extractor, image_resizer, region_proposal_network, roi_heads,
            number_of_stages: as in `kdet.FasterRCNN`.
        max_num_context_features: int. Context rows per image the data layer pads (or
            clips) to. Defaults to `2000`.
        attention_bottleneck_dimension: int. Depth of the queries, keys and values. Defaults
            to `2048`.
        attention_temperature: float. The softmax temperature. Defaults to `0.01`.
        context_feature_length: int. Length D of each context feature. Defaults to `2057`.
        use_self_attention, use_long_term_attention, self_attention_in_sequence,
            num_attention_heads, num_attention_layers: the TF OD API TF2 attention takes only
            their defaults (`False`, `True`, `False`, `1`, `1`; its TF1 graph alone has the
            others): another value is a `ValueError`.
        attention_position: `"post_box_classifier"` or `"post_rpn"` (TF OD API
            `POST_BOX_CLASSIFIER`, `POST_RPN`). Defaults to `"post_box_classifier"`.
        tf1_attention: bool. Compute the attention as the TF OD API's TF1 graph does
            (`context_rcnn_lib`: projections without biases, box features plus twice their
            pooled average plus the attention, at either position; see `ContextAttention`):
            what TF1 checkpoints (`model.ckpt`, the TF1 zoo's Context R-CNN) need, and
            `restore_tfod_checkpoint` refuses them into a model without it. Defaults to
            `False` (TF2's `AttentionBlock`).
        **kwargs: passed to `kdet.FasterRCNN`.

    Data contract:
        x: a dict `{"resized_images": float32 [B, H, W, 3], "true_image_shape": int32 [B, 2],
            "context_features": float32 [B, max_num_context_features,
            context_feature_length], "valid_context_size": int32 [B]}`: images already
            resized by the model's `image_resizer` (see `ObjectDetector.resize_inputs`) with
            their context. `kdet.data.read_tfrecords(load_context_features=True,
            image_resizer=model.image_resizer, max_num_context_features=...,
            context_feature_length=...)` gives it from records with
            `image/context_features`; `context_inputs` makes it from raw images.
        y, predictions: as `kdet.FasterRCNN` (boxes in pixels of each image's content).

    Example:
    ```python
    model = kdet.models.faster_rcnn.ContextRCNN(
        num_classes=3,
        feature_extractor="faster_rcnn_resnet50",
        image_resizer=kdet.layers.FixedShapeResizer(512, 512),
        max_num_context_features=100,
        context_feature_length=2057,
    )
    model.compile()
    dataset = kdet.data.read_tfrecords(
        "train.record", batch_size=4, image_resizer=model.image_resizer,
        load_context_features=True, max_num_context_features=100, context_feature_length=2057,
    )
    model.fit(dataset)
    model.predict(model.context_inputs(images, context_features, valid_context_size))
    ```

    Reference:
        [Beery et al., 2020](https://arxiv.org/abs/1912.03538); TF OD API
        `meta_architectures/context_rcnn_meta_arch.py`, `context_rcnn_lib_tf2.py`.
    """

    def __init__(
        self,
        num_classes,
        feature_extractor,
        max_num_context_features=2000,
        attention_bottleneck_dimension=2048,
        attention_temperature=0.01,
        context_feature_length=2057,
        use_self_attention=False,
        use_long_term_attention=True,
        self_attention_in_sequence=False,
        num_attention_heads=1,
        num_attention_layers=1,
        attention_position="post_box_classifier",
        tf1_attention=False,
        **kwargs,
    ):
        given = {
            "use_self_attention": use_self_attention,
            "use_long_term_attention": use_long_term_attention,
            "self_attention_in_sequence": self_attention_in_sequence,
            "num_attention_heads": num_attention_heads,
            "num_attention_layers": num_attention_layers,
        }
        for name, value in given.items():
            if value != _TF2_ONLY_VALUES[name]:
                raise ValueError(
                    f"ContextRCNN: {name}={value!r} is not supported: the TF OD API's TF2 "
                    f"Context R-CNN takes only {name}={_TF2_ONLY_VALUES[name]!r} (one head, one "
                    "layer of attention into the context features; the others are TF1 only)"
                )
        if attention_position not in ATTENTION_POSITIONS:
            raise ValueError(
                f"ContextRCNN: attention_position must be one of {ATTENTION_POSITIONS}; got "
                f"{attention_position!r} (the TF OD API's ATTENTION_DEFAULT adds no attention "
                "at all: that is kdet.FasterRCNN)"
            )
        for name, value in (
            ("max_num_context_features", max_num_context_features),
            ("context_feature_length", context_feature_length),
            ("attention_bottleneck_dimension", attention_bottleneck_dimension),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ContextRCNN: {name} must be a positive int; got {value!r}")
        super().__init__(num_classes, feature_extractor, **kwargs)
        self.max_num_context_features = max_num_context_features
        self.attention_bottleneck_dimension = attention_bottleneck_dimension
        self.attention_temperature = attention_temperature
        self.context_feature_length = context_feature_length
        self.use_self_attention = use_self_attention
        self.use_long_term_attention = use_long_term_attention
        self.self_attention_in_sequence = self_attention_in_sequence
        self.num_attention_heads = num_attention_heads
        self.num_attention_layers = num_attention_layers
        self.attention_position = attention_position
        self.tf1_attention = tf1_attention
        self.context_attention = ContextAttention(
            attention_bottleneck_dimension,
            attention_temperature,
            tf1_attention=tf1_attention,
            name="context_attention",
        )
        # Set while `build` runs the model on zero images, which have no context.
        self._building_without_context = False

    def context_inputs(self, images, context_features, valid_context_size=None):
        """The model's input dict from raw images and their context features.

        Args:
            images: `[B, H, W, 3]` raw pixel values 0..255.
            context_features: float `[B, M, context_feature_length]`, zero-padded (or
                clipped, as records are read) to `max_num_context_features` rows here.
            valid_context_size: int `[B]`, the real rows of each image's features. Defaults
                to all M.

        Returns:
            `{"resized_images", "true_image_shape", "context_features",
            "valid_context_size"}` (the images resized by `image_resizer`).
        """
        resized, true_image_shape = self.image_resizer.resize(tf.convert_to_tensor(images))
        padded = pad_context_features(context_features, self.max_num_context_features)
        if valid_context_size is None:
            valid_context_size = tf.fill([tf.shape(resized)[0]], padded[VALID_CONTEXT_SIZE])
        return {
            RESIZED_IMAGES: resized,
            TRUE_IMAGE_SHAPE: true_image_shape,
            CONTEXT_FEATURES: padded[CONTEXT_FEATURES],
            VALID_CONTEXT_SIZE: tf.cast(valid_context_size, tf.int32),
        }

    def build(self, input_shape):
        self._building_without_context = True
        try:
            super().build(input_shape)
        finally:
            self._building_without_context = False

    def _context_of(self, images):
        """`(context_features [B, M, D], valid_context_size [B])` of the input dict."""
        if isinstance(images, dict) and {CONTEXT_FEATURES, VALID_CONTEXT_SIZE} <= set(images):
            features = tf.cast(images[CONTEXT_FEATURES], tf.float32)
            if features.shape[-1] not in (None, self.context_feature_length):
                raise ValueError(
                    f"ContextRCNN: context_features have length {features.shape[-1]}; the "
                    f"model's context_feature_length is {self.context_feature_length}"
                )
            return features, tf.cast(images[VALID_CONTEXT_SIZE], tf.int32)
        if self._building_without_context and not isinstance(images, dict):
            batch = tf.shape(images)[0]
            return tf.zeros([batch, 1, self.context_feature_length]), tf.zeros([batch], tf.int32)
        given = sorted(images) if isinstance(images, dict) else f"a {type(images).__name__}"
        raise ValueError(
            "ContextRCNN takes a dict with 'resized_images', 'true_image_shape', "
            f"'{CONTEXT_FEATURES}' [batch, max_num_context_features, context_feature_length] "
            f"and '{VALID_CONTEXT_SIZE}' [batch] (kdet.data.read_tfrecords(load_context_features"
            f"=True, image_resizer=model.image_resizer, ...) or model.context_inputs(images, "
            f"context_features)); got {given}"
        )

    def _first_stage(self, images, training):
        context_features, valid_context_size = self._context_of(images)
        return {
            **super()._first_stage(images, training),
            CONTEXT_FEATURES: context_features,
            VALID_CONTEXT_SIZE: valid_context_size,
        }

    def _box_classifier_features(self, first_stage, rois, training):
        """RoIs `[B, R, 4]` → the extractor's box classifier features `[B * R, ...]` with the
        attended context added (to the crops before the extractor for `"post_rpn"`)."""
        features = self.roi_heads.crop(first_stage["features"], rois, first_stage["image_size"])
        if self.attention_position == "post_rpn":
            features = self._with_context(features, first_stage, rois, training)
        features = self.feature_extractor.extract_box_classifier_features(
            features, training=training
        )
        if self.attention_position == "post_box_classifier":
            features = self._with_context(features, first_stage, rois, training)
        return features

    def _with_context(self, features, first_stage, rois, training):
        """`features` `[B * R, ..., C]` of `rois` `[B, R, 4]` plus their attention into the
        context, `[B * R, 1, ..., 1, C]` broadcast over the axes between."""
        batch, count = tf.shape(rois)[0], tf.shape(rois)[1]
        grouped = tf.reshape(features, [batch, count, *features.shape[1:]])
        attended = self.context_attention(
            grouped,
            first_stage[CONTEXT_FEATURES],
            first_stage[VALID_CONTEXT_SIZE],
            box_valid=tf.logical_not(is_padding(rois)),
            training=training,
        )
        inner = [1] * (features.shape.rank - 2)
        attended = tf.cast(attended, features.dtype)  # float32 or the mixed policy's bfloat16
        return features + tf.reshape(attended, [-1, *inner, features.shape[-1]])

    def get_config(self):
        return {
            **super().get_config(),
            "max_num_context_features": self.max_num_context_features,
            "attention_bottleneck_dimension": self.attention_bottleneck_dimension,
            "attention_temperature": self.attention_temperature,
            "context_feature_length": self.context_feature_length,
            "use_self_attention": self.use_self_attention,
            "use_long_term_attention": self.use_long_term_attention,
            "self_attention_in_sequence": self.self_attention_in_sequence,
            "num_attention_heads": self.num_attention_heads,
            "num_attention_layers": self.num_attention_layers,
            "attention_position": self.attention_position,
            "tf1_attention": self.tf1_attention,
        }
