import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.targets import IGNORED
from kdet.targets import UNMATCHED
from kdet.targets import ArgmaxMatcher

# [batch=1, num_gt=2, num_anchors=6]
SIMILARITY = [
    [
        [0.9, 0.6, 0.35, 0.1, 0.0, 0.2],
        [0.2, 0.7, 0.1, 0.45, 0.0, 0.1],
    ]
]


def test_thresholds_give_matched_ignored_and_unmatched():
    matcher = ArgmaxMatcher(matched_threshold=0.5, unmatched_threshold=0.3)
    np.testing.assert_array_equal(
        matcher.match(SIMILARITY), [[0, 1, IGNORED, IGNORED, UNMATCHED, UNMATCHED]]
    )


def test_threshold_boundaries_are_inclusive_from_below():
    matcher = ArgmaxMatcher(matched_threshold=0.5, unmatched_threshold=0.3)
    np.testing.assert_array_equal(
        matcher.match([[[0.5, 0.3, 0.2999]]]), [[0, IGNORED, UNMATCHED]]
    )


def test_single_threshold_has_no_ignored_band():
    np.testing.assert_array_equal(
        ArgmaxMatcher(matched_threshold=0.5).match(SIMILARITY),
        [[0, 1, UNMATCHED, UNMATCHED, UNMATCHED, UNMATCHED]],
    )


def test_negatives_between_thresholds_when_not_lower_than_unmatched():
    matcher = ArgmaxMatcher(
        matched_threshold=0.5, unmatched_threshold=0.3, negatives_lower_than_unmatched=False
    )
    np.testing.assert_array_equal(
        matcher.match(SIMILARITY), [[0, 1, UNMATCHED, UNMATCHED, IGNORED, IGNORED]]
    )


def test_no_matched_threshold_matches_every_anchor_to_its_best_row():
    np.testing.assert_array_equal(
        ArgmaxMatcher(matched_threshold=None).match(SIMILARITY), [[0, 1, 0, 1, 0, 0]]
    )


def test_force_match_gives_each_row_its_best_anchor():
    similarity = [[[0.9, 0.6, 0.1], [0.3, 0.4, 0.2]]]  # row 1 never reaches 0.5
    plain = ArgmaxMatcher(matched_threshold=0.5)
    forced = ArgmaxMatcher(matched_threshold=0.5, force_match_for_each_row=True)
    np.testing.assert_array_equal(plain.match(similarity), [[0, 0, UNMATCHED]])
    np.testing.assert_array_equal(forced.match(similarity), [[0, 1, UNMATCHED]])


def test_force_match_tie_goes_to_the_lower_row():
    similarity = [[[0.2, 0.1], [0.3, 0.1]]]  # both rows' best anchor is anchor 0
    matcher = ArgmaxMatcher(matched_threshold=0.5, force_match_for_each_row=True)
    np.testing.assert_array_equal(matcher.match(similarity), [[0, UNMATCHED]])


def test_padding_rows_never_match_nor_force_match():
    similarity = [[[0.9, 0.1, 0.0], [0.95, 0.1, 0.8]]]  # row 1 is padding
    matcher = ArgmaxMatcher(matched_threshold=0.5, force_match_for_each_row=True)
    np.testing.assert_array_equal(
        matcher.match(similarity, valid_rows=[[True, False]]), [[0, UNMATCHED, UNMATCHED]]
    )


@pytest.mark.parametrize("negatives_lower_than_unmatched", [True, False])
def test_images_without_valid_rows_are_all_unmatched(negatives_lower_than_unmatched):
    matcher = ArgmaxMatcher(
        matched_threshold=0.5,
        unmatched_threshold=0.3,
        negatives_lower_than_unmatched=negatives_lower_than_unmatched,
        force_match_for_each_row=True,
    )
    similarity = [[[0.9, 0.1]], [[0.9, 0.4]]]
    np.testing.assert_array_equal(
        matcher.match(similarity, valid_rows=[[True], [False]]),
        [[0, UNMATCHED if negatives_lower_than_unmatched else IGNORED], [UNMATCHED] * 2],
    )


def test_zero_groundtruth_rows():
    matches = ArgmaxMatcher().match(tf.zeros([2, 0, 5]))
    np.testing.assert_array_equal(matches, np.full([2, 5], UNMATCHED))


def test_static_output_shape_under_tf_function():
    matcher = ArgmaxMatcher(0.7, 0.3, force_match_for_each_row=True)
    match = tf.function(matcher.match)
    concrete = match.get_concrete_function(
        tf.TensorSpec([4, 3, 20], tf.float32), tf.TensorSpec([4, 3], tf.bool)
    )
    assert concrete.structured_outputs.shape == (4, 20)
    assert concrete.structured_outputs.dtype == tf.int32


def test_config_round_trip():
    matcher = ArgmaxMatcher(
        0.7, 0.3, negatives_lower_than_unmatched=False, force_match_for_each_row=True
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(matcher))
    assert isinstance(restored, ArgmaxMatcher)
    assert restored.get_config() == matcher.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"matched_threshold": 0.3, "unmatched_threshold": 0.5}, "unmatched_threshold <="),
        ({"matched_threshold": None, "unmatched_threshold": 0.5}, "without a matched"),
        ({"matched_threshold": 0.5, "negatives_lower_than_unmatched": False}, "below"),
    ],
)
def test_rejects_inconsistent_thresholds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArgmaxMatcher(**kwargs)
