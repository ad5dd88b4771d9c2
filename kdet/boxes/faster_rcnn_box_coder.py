"""The Faster R-CNN box coder: boxes as offsets and log-scales relative to anchors."""

import math

import keras
import tensorflow as tf

# Added to heights and widths before dividing and taking logs, as the TF OD API does.
EPSILON = 1e-8
# Upper bound on decoded log-scales (torchvision's `bbox_xform_clip`): exp() of a wild
# prediction would overflow to inf early in training.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


@keras.saving.register_keras_serializable(package="kdet")
class FasterRcnnBoxCoder:
    """Encodes boxes relative to anchors as `[ty, tx, th, tw]`, and decodes them back.

    With `(yc, xc, h, w)` the centre and size of a box and `(yca, xca, ha, wa)` those of its
    anchor:

        ty = sy * (yc - yca) / ha      tx = sx * (xc - xca) / wa
        th = sh * log(h / ha)          tw = sw * log(w / wa)

    where `(sy, sx, sh, sw)` are the `scale_factors`. The coder only transforms coordinates; it
    does not match boxes to anchors (see `kdet.targets.TargetAssigner`). Boxes and anchors are
    `yxyx` in one consistent unit: the codes do not depend on it, so kdet uses `rel_yxyx`.
    Leading dimensions broadcast, so `[batch, num_anchors, 4]` boxes encode against
    `[num_anchors, 4]` anchors.

    Args:
        scale_factors: sequence of 4 positive floats, or None. Multipliers of `ty, tx, th, tw`;
            None means no scaling. Defaults to `(10.0, 10.0, 5.0, 5.0)`, the TF OD API and
            Detectron value for Faster R-CNN and SSD.
        max_log_scale: float or None, the bound decoded log-scales `th / sh`, `tw / sw` are
            clamped at before `exp` (torchvision's `bbox_xform_clip`), so that a wild
            prediction early in training decodes to a finite box. None: no bound, as the TF OD
            API decodes (the two differ only for boxes over `exp(max_log_scale)` times their
            anchor's size). Defaults to `log(1000 / 16)` ≈ 4.135.

    Example:
    ```python
    coder = kdet.boxes.FasterRcnnBoxCoder()
    anchors = [[0.0, 0.0, 0.5, 0.5]]
    codes = coder.encode([[0.1, 0.1, 0.5, 0.6]], anchors)  # [[1.0, 2.0, -1.116, 0.0]]
    coder.decode(codes, anchors)  # [[0.1, 0.1, 0.5, 0.6]]
    ```

    Reference:
        - [Ren et al., 2015](https://arxiv.org/abs/1506.01497), equation (2).
        - TF OD API `object_detection/box_coders/faster_rcnn_box_coder.py`.
    """

    def __init__(self, scale_factors=(10.0, 10.0, 5.0, 5.0), max_log_scale=BBOX_XFORM_CLIP):
        if scale_factors is not None:
            scale_factors = tuple(float(s) for s in scale_factors)
            if len(scale_factors) != 4 or min(scale_factors) <= 0:
                raise ValueError(
                    "`scale_factors` must be None or 4 positive numbers (for ty, tx, th, tw); "
                    f"got {scale_factors}."
                )
        self.scale_factors = scale_factors
        self.max_log_scale = None if max_log_scale is None else float(max_log_scale)

    @property
    def code_size(self):
        """Number of values per encoded box: `[ty, tx, th, tw]`."""
        return 4

    def encode(self, boxes, anchors):
        """Encodes boxes relative to anchors.

        Args:
            boxes: float `[..., 4]`, `yxyx`, the boxes to encode.
            anchors: float `[..., 4]`, `yxyx` in the unit of `boxes`, broadcastable to `boxes`.

        Returns:
            float32 `[..., 4]` codes `[ty, tx, th, tw]`.
        """
        yc, xc, h, w = _centers_and_sizes(boxes)
        yca, xca, ha, wa = _centers_and_sizes(anchors)
        ha += EPSILON
        wa += EPSILON
        codes = tf.stack(
            [
                (yc - yca) / ha,
                (xc - xca) / wa,
                tf.math.log((h + EPSILON) / ha),
                tf.math.log((w + EPSILON) / wa),
            ],
            axis=-1,
        )
        if self.scale_factors is not None:
            codes *= self.scale_factors
        return codes

    def decode(self, rel_codes, anchors):
        """Decodes codes relative to anchors back into boxes.

        Args:
            rel_codes: float `[..., 4]` codes `[ty, tx, th, tw]`.
            anchors: float `[..., 4]`, `yxyx`, broadcastable to `rel_codes`.

        Returns:
            float32 `[..., 4]` boxes, `yxyx` in the unit of `anchors`. Log-scales are clamped at
            `max_log_scale` before `exp` (unless it is None).
        """
        rel_codes = tf.convert_to_tensor(rel_codes, tf.float32)
        if self.scale_factors is not None:
            rel_codes /= self.scale_factors
        ty, tx, th, tw = tf.unstack(rel_codes, axis=-1)
        yca, xca, ha, wa = _centers_and_sizes(anchors)
        yc = ty * ha + yca
        xc = tx * wa + xca
        if self.max_log_scale is not None:
            th = tf.minimum(th, self.max_log_scale)
            tw = tf.minimum(tw, self.max_log_scale)
        half_h = 0.5 * tf.exp(th) * ha
        half_w = 0.5 * tf.exp(tw) * wa
        return tf.stack([yc - half_h, xc - half_w, yc + half_h, xc + half_w], axis=-1)

    def get_config(self):
        scale_factors = None if self.scale_factors is None else list(self.scale_factors)
        return {"scale_factors": scale_factors, "max_log_scale": self.max_log_scale}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _centers_and_sizes(boxes):
    """Returns `(y_center, x_center, height, width)` of `yxyx` boxes `[..., 4]`."""
    ymin, xmin, ymax, xmax = tf.unstack(tf.convert_to_tensor(boxes, tf.float32), axis=-1)
    return 0.5 * (ymin + ymax), 0.5 * (xmin + xmax), ymax - ymin, xmax - xmin
