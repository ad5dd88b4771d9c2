"""Matches each anchor to the groundtruth box it is most similar to."""

import keras
import tensorflow as tf

from kdet.targets.match import IGNORED
from kdet.targets.match import UNMATCHED


@keras.saving.register_keras_serializable(package="kdet")
class ArgmaxMatcher:
    """Matches each anchor (column) to the groundtruth row of highest similarity.

    With `s` the best similarity of an anchor over the valid groundtruth rows:
    - `s >= matched_threshold`: matched, the match value is the row index (a positive);
    - `unmatched_threshold <= s < matched_threshold`: `IGNORED`, or `UNMATCHED` when
      `negatives_lower_than_unmatched=False`;
    - `s < unmatched_threshold`: `UNMATCHED` (a negative), or `IGNORED` when
      `negatives_lower_than_unmatched=False`.

    With `force_match_for_each_row=True`, each valid row additionally claims the anchor it is
    most similar to, whatever the thresholds say, so no groundtruth box is left without a
    positive anchor (when two rows claim the same anchor, the lower row index wins). Padding
    rows never match and are never force-matched; an image without any valid row has every
    anchor `UNMATCHED`. The matcher only reads a similarity matrix: computing it (IoU) and
    turning matches into training targets belong to `kdet.targets.TargetAssigner`.

    Args:
        matched_threshold: float or None. Lowest similarity of a positive match. None matches
            every anchor to its best row, with no thresholds. Defaults to `0.5`.
        unmatched_threshold: float or None. Similarities below it are negatives (see above).
            Must not exceed `matched_threshold`. None means `matched_threshold`, so that there
            is no ignored band. Defaults to `None`.
        negatives_lower_than_unmatched: bool. Whether negatives are the anchors below
            `unmatched_threshold` (True) or those between the thresholds (False, the band below
            is then ignored). Defaults to `True`.
        force_match_for_each_row: bool. Whether each valid row claims its best anchor.
            Defaults to `False`.

    Example:
    ```python
    matcher = kdet.targets.ArgmaxMatcher(matched_threshold=0.7, unmatched_threshold=0.3)
    iou = [[[0.8, 0.5, 0.1]]]  # [batch, num_gt, num_anchors]
    matcher.match(iou)  # [[0, -2, -1]]: positive for row 0, IGNORED, UNMATCHED
    ```

    Reference:
        TF OD API `object_detection/matchers/argmax_matcher.py`.
    """

    def __init__(
        self,
        matched_threshold=0.5,
        unmatched_threshold=None,
        negatives_lower_than_unmatched=True,
        force_match_for_each_row=False,
    ):
        if matched_threshold is None and unmatched_threshold is not None:
            raise ValueError(
                f"ArgmaxMatcher got unmatched_threshold={unmatched_threshold} without a "
                "matched_threshold; set matched_threshold too, or neither."
            )
        if unmatched_threshold is not None and unmatched_threshold > matched_threshold:
            raise ValueError(
                f"ArgmaxMatcher expects unmatched_threshold <= matched_threshold; got "
                f"unmatched_threshold={unmatched_threshold} > "
                f"matched_threshold={matched_threshold}."
            )
        if (
            not negatives_lower_than_unmatched
            and matched_threshold is not None
            and unmatched_threshold in (None, matched_threshold)
        ):
            raise ValueError(
                "With negatives_lower_than_unmatched=False the negatives are the anchors "
                "between the two thresholds, so unmatched_threshold must be set below "
                f"matched_threshold={matched_threshold}; got "
                f"unmatched_threshold={unmatched_threshold}."
            )
        self.matched_threshold = matched_threshold
        self.unmatched_threshold = unmatched_threshold
        self.negatives_lower_than_unmatched = negatives_lower_than_unmatched
        self.force_match_for_each_row = force_match_for_each_row

    def match(self, similarity, valid_rows=None):
        """Matches every anchor of every image.

        Args:
            similarity: float `[batch, num_gt, num_anchors]`, e.g. the IoU of each groundtruth
                box with each anchor.
            valid_rows: optional bool `[batch, num_gt]`, False for padding rows. Defaults to
                all rows valid.

        Returns:
            int32 `[batch, num_anchors]`: the matched row index (>= 0), `UNMATCHED` or
            `IGNORED` for each anchor.
        """
        similarity = tf.convert_to_tensor(similarity, tf.float32)
        if similarity.shape.rank != 3:
            raise ValueError(
                "ArgmaxMatcher.match() expects `similarity` of shape "
                f"[batch, num_gt, num_anchors]; got shape {similarity.shape}."
            )
        batch_size, num_anchors = tf.shape(similarity)[0], tf.shape(similarity)[2]
        if similarity.shape[1] == 0:
            return tf.fill([batch_size, num_anchors], UNMATCHED)
        if valid_rows is None:
            valid_rows = tf.ones(tf.shape(similarity)[:2], tf.bool)
        valid_rows = tf.convert_to_tensor(valid_rows, tf.bool)

        # -inf keeps padding rows out of the argmax and the best-similarity values.
        masked = tf.where(valid_rows[:, :, None], similarity, float("-inf"))
        matches = tf.argmax(masked, axis=1, output_type=tf.int32)
        if self.matched_threshold is not None:
            matches = self._apply_thresholds(matches, tf.reduce_max(masked, axis=1))
        if self.force_match_for_each_row:
            best_anchor = tf.argmax(masked, axis=2, output_type=tf.int32)
            claims = tf.logical_and(
                tf.one_hot(best_anchor, num_anchors, on_value=True, off_value=False),
                valid_rows[:, :, None],
            )
            # argmax over the claiming rows picks the lowest row index among ties.
            claiming_row = tf.argmax(tf.cast(claims, tf.int32), axis=1, output_type=tf.int32)
            matches = tf.where(tf.reduce_any(claims, axis=1), claiming_row, matches)
        has_valid_row = tf.reduce_any(valid_rows, axis=1, keepdims=True)
        return tf.where(has_valid_row, matches, UNMATCHED)

    def _apply_thresholds(self, matches, best_similarity):
        """Replaces the matches below `matched_threshold` with UNMATCHED or IGNORED."""
        unmatched_threshold = self.unmatched_threshold
        if unmatched_threshold is None:
            unmatched_threshold = self.matched_threshold
        below = best_similarity < unmatched_threshold
        between = tf.logical_and(
            best_similarity >= unmatched_threshold, best_similarity < self.matched_threshold
        )
        below_value, between_value = (
            (UNMATCHED, IGNORED) if self.negatives_lower_than_unmatched else (IGNORED, UNMATCHED)
        )
        matches = tf.where(below, below_value, matches)
        return tf.where(between, between_value, matches)

    def get_config(self):
        return {
            "matched_threshold": self.matched_threshold,
            "unmatched_threshold": self.unmatched_threshold,
            "negatives_lower_than_unmatched": self.negatives_lower_than_unmatched,
            "force_match_for_each_row": self.force_match_for_each_row,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
