"""Context R-CNN's attention of box features into context features (the TF OD API's TF2
`context_rcnn_lib_tf2.AttentionBlock`)."""

import keras
import tensorflow as tf

from kdet.layers.fused_batch_normalization import FusedBatchNormalization

# Added to the attention logits of padding context rows, so that softmax gives them ~0.
_PADDING_LOGIT = -100000.0


@keras.saving.register_keras_serializable(package="kdet")
class ContextProjection(keras.layers.Layer):
    """A dense projection, batch norm and ReLU6 of feature vectors (TF OD API
    `ContextProjection`: batch norm epsilon 0.001, momentum 0.97).

    Args:
        units: int. The projected dimension.
        use_bias: bool. Whether the dense projection has a bias (the TF OD API's TF1 attention,
            `slim.fully_connected` with a batch norm, has none). Defaults to `True`.
        **kwargs: passed to `keras.layers.Layer`.

    Call:
        features `[N, D]` → `[N, units]`.
    """

    def __init__(self, units, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = use_bias
        self.dense = keras.layers.Dense(units, use_bias=use_bias, name="dense")
        self.batch_norm = FusedBatchNormalization(
            momentum=0.97, epsilon=0.001, name="batch_norm"
        )

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.batch_norm.build((*input_shape[:-1], self.units))
        self.built = True

    def call(self, features, training=None):
        return tf.nn.relu6(self.batch_norm(self.dense(features), training=training))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="kdet")
class ContextAttention(keras.layers.Layer):
    """One head of attention from each RoI's box features into its image's context features.

    Queries are the RoIs' features averaged over their height and width, keys and values the
    context features, each through its `ContextProjection` to `bottleneck_dimension` and L2
    normalized; padding queries and keys are zeroed, padding keys get a -100000 logit and
    padding values 0; the softmax of the query-key products divided by `attention_temperature`
    weighs the values, and a last `ContextProjection` (not normalized) brings the result back
    to the box features' depth. The caller adds it to the box features (TF OD API
    `AttentionBlock` with `ContextRCNNMetaArch`).

    With `tf1_attention`, it computes what the TF OD API's TF1 graph computes instead
    (`context_rcnn_lib._compute_box_context_attention`, one head and layer, which TF1
    checkpoints such as the TF1 zoo's Context R-CNN were trained with): its projections have no
    bias, and it returns the attention plus twice the pooled box features (TF1 adds the pooled
    features to the attention inside its layer and once more after it, so the model's box
    features become `box + 2 * pooled + attention`, not TF2's `box + attention`).

    Args:
        bottleneck_dimension: int. TF OD API `attention_bottleneck_dimension`.
        attention_temperature: float. TF OD API `attention_temperature`.
        tf1_attention: bool. The TF1 computation above instead of TF2's. Defaults to `False`.
        **kwargs: passed to `keras.layers.Layer`.

    Call:
        box_features: float `[B, P, ..., C]` (e.g. `[B, P, h, w, C]` crops; the axes between
            P and C are averaged).
        context_features: float `[B, M, D]`.
        valid_context_size: int `[B]`, the real rows of `context_features` (the first ones).
        box_valid: optional bool `[B, P]`, the real RoIs (all when None).
        training: bool, for the batch norms.

    Returns:
        float32 `[B, P, C]` (with `tf1_attention`, plus twice the pooled box features).
    """

    def __init__(self, bottleneck_dimension, attention_temperature, tf1_attention=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.bottleneck_dimension = bottleneck_dimension
        self.attention_temperature = attention_temperature
        self.tf1_attention = tf1_attention
        self.query_projection = self._projection(bottleneck_dimension, "query_projection")
        self.key_projection = self._projection(bottleneck_dimension, "key_projection")
        self.value_projection = self._projection(bottleneck_dimension, "value_projection")
        self.output_projection = None

    def _projection(self, units, name):
        return ContextProjection(units, use_bias=not self.tf1_attention, name=name)

    def build(self, box_features_shape, context_features_shape):
        depth = box_features_shape[-1]
        self.query_projection.build((None, depth))
        self.key_projection.build((None, context_features_shape[-1]))
        self.value_projection.build((None, context_features_shape[-1]))
        self.output_projection = self._projection(depth, "output_projection")
        self.output_projection.build((None, self.bottleneck_dimension))
        self.built = True

    def call(self, box_features, context_features, valid_context_size, box_valid=None,
             training=None):
        box_features = tf.convert_to_tensor(box_features)
        context_features = tf.cast(context_features, box_features.dtype)
        pooled = tf.reduce_mean(box_features, axis=list(range(2, box_features.shape.rank - 1)))
        context_valid = tf.sequence_mask(valid_context_size, tf.shape(context_features)[1])
        if box_valid is None:
            box_valid = tf.ones(tf.shape(pooled)[:2], tf.bool)
        queries = self._project(self.query_projection, pooled, training, normalize=True)
        keys = self._project(self.key_projection, context_features, training, normalize=True)
        values = self._project(self.value_projection, context_features, training, normalize=True)
        context_mask = tf.cast(context_valid, keys.dtype)[..., None]
        keys *= context_mask
        values *= context_mask
        queries *= tf.cast(box_valid, queries.dtype)[..., None]
        logits = tf.matmul(queries, keys, transpose_b=True)
        logits += (1.0 - tf.transpose(context_mask, [0, 2, 1])) * _PADDING_LOGIT
        weights = tf.nn.softmax(logits / self.attention_temperature)
        attended = tf.matmul(weights, values)
        output = self._project(self.output_projection, attended, training, normalize=False)
        if self.tf1_attention:  # its pooled features in the output's dtype (mixed precision)
            output += 2.0 * tf.cast(pooled, output.dtype)
        return output

    @staticmethod
    def _project(projection, features, training, normalize):
        """`[B, N, D]` → `[B, N, units]` through `projection`, L2 normalized if asked."""
        batch, count = tf.shape(features)[0], tf.shape(features)[1]
        flat = tf.reshape(features, [-1, features.shape[-1]])
        projected = tf.reshape(
            projection(flat, training=training), [batch, count, projection.units]
        )
        return tf.math.l2_normalize(projected, axis=-1) if normalize else projected

    def get_config(self):
        return {
            **super().get_config(),
            "bottleneck_dimension": self.bottleneck_dimension,
            "attention_temperature": self.attention_temperature,
            "tf1_attention": self.tf1_attention,
        }
