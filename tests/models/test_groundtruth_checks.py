"""`fit` / `evaluate` stop on ground truth that breaks the data contract, and on NaN losses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
import tiny_ssd_extractor
from kdet.models import groundtruth_checks
from kdet.models.groundtruth_checks import GroundtruthError
from kdet.training import NonFiniteLossError

IMAGE_SIZE = 64

# One image per row: two real boxes (yxyx pixels of 64x64 images) and a padding row.
BOXES = np.array(
    [
        [[9, 17, 30, 45], [40, 3, 63, 21], [-1, -1, -1, -1]],
        [[5, 5, 30, 30], [-1, -1, -1, -1], [-1, -1, -1, -1]],
    ],
    np.float32,
)
LABELS = np.array([[1, 2, -1], [2, -1, -1]], np.int32)


def _check(boxes, labels, bounding_box_format="yxyx", num_classes=2, step=None):
    """Runs `check_groundtruth` in a graph, as `train_step` does."""

    @tf.function
    def run(boxes, labels):
        return groundtruth_checks.check_groundtruth(
            boxes, labels, IMAGE_SIZE, IMAGE_SIZE, num_classes, bounding_box_format, step
        )

    with groundtruth_checks.groundtruth_errors_as_value_errors():
        return bool(run(boxes, labels))


def _mistakes():
    """The ground truth mistakes of the first-hour report, as `(name, y)` for `fit`."""
    real = LABELS >= 0
    return {
        "zero_based_labels": {"boxes": BOXES, "labels": np.where(real, LABELS - 1, -1)},
        "labels_above_num_classes": {"boxes": BOXES, "labels": np.where(real, LABELS + 2, -1)},
        "normalized_boxes": {
            "boxes": np.where(real[..., None], BOXES / IMAGE_SIZE, -1.0),
            "labels": LABELS,
        },
        "swapped_min_max": {
            "boxes": np.where(real[..., None], BOXES[..., [2, 3, 0, 1]], -1.0),
            "labels": LABELS,
        },
    }


EXPECTED_MESSAGES = {
    "zero_based_labels": r"label 0 .*labels must be label-map ids 1\.\.2 \(0 is background.*"
    r"0-based class indices\? Add 1",
    "labels_above_num_classes": r"label 3 .*labels must be label-map ids 1\.\.2 .*got another "
    r"label: is num_classes=2 right\?",
    "normalized_boxes": r"boxes look normalized .* but bounding_box_format is 'yxyx' "
    r"\(\[ymin, xmin, ymax, xmax\] in pixels\) and the images are 64x64: build the model with "
    r"bounding_box_format='rel_yxyx' or multiply the boxes by the image size",
    "swapped_min_max": r"box \[30 45 9 17\] label 1 \(image 0 of the batch, row 0\).*inverted "
    r"\(min > max\) when read as 'yxyx'",
}


def test_valid_groundtruth_passes_with_padding_rows_and_images_without_boxes():
    assert _check(BOXES, LABELS)
    assert _check(np.full((2, 3, 4), -1, np.float32), np.full((2, 3), -1, np.int32))
    assert _check(np.zeros((2, 0, 4), np.float32), np.zeros((2, 0), np.int32))
    # Normalized boxes are right for a rel_ format; labels of padding rows are not checked.
    assert _check(np.where(BOXES >= 0, BOXES / IMAGE_SIZE, -1.0), LABELS, "rel_yxyx")
    assert _check(BOXES, np.where(LABELS >= 0, LABELS, 0))


@pytest.mark.parametrize("mistake", sorted(EXPECTED_MESSAGES))
def test_each_mistake_is_named_with_what_was_expected(mistake):
    y = _mistakes()[mistake]
    with pytest.raises(GroundtruthError, match=EXPECTED_MESSAGES[mistake]):
        _check(y["boxes"], y["labels"])


def test_other_formats_and_units_are_checked_in_their_own_terms():
    xywh = np.array([[[17, 9, 28, -21]]], np.float32)  # negative height
    with pytest.raises(GroundtruthError, match=r"inverted \(min > max\) when read as 'xywh' "
                       r"\(\[xmin, ymin, width, height\] in pixels\)"):
        _check(xywh, [[1]], "xywh")
    with pytest.raises(GroundtruthError, match="boxes look like pixels but bounding_box_format "
                       "is 'rel_yxyx' .*build the model with bounding_box_format='yxyx'"):
        _check(BOXES, LABELS, "rel_yxyx")
    with pytest.raises(GroundtruthError, match="box lies far outside the 64x64 image"):
        _check(np.where(BOXES >= 0, BOXES * 4, -1.0), LABELS)
    with pytest.raises(GroundtruthError, match="must be finite numbers; got NaN"):
        _check(np.where(np.arange(4) == 0, np.nan, BOXES).astype(np.float32), LABELS)
    with pytest.raises(GroundtruthError, match="at training step 7"):
        _check(BOXES, LABELS - 1, step=tf.constant(7, tf.int64))


def test_one_class_models_name_their_one_id():
    with pytest.raises(GroundtruthError, match=r"label 2 .*labels must be label-map id 1 \(0 is "
                       r"background.*is num_classes=1 right\?"):
        _check(BOXES, LABELS, num_classes=1)


def test_other_tensorflow_errors_pass_through_unchanged():
    with pytest.raises(tf.errors.InvalidArgumentError, match="plain"):
        with groundtruth_checks.groundtruth_errors_as_value_errors():
            tf.debugging.Assert(False, ["plain"])


def _tiny_ssd():
    return tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def images():
    return kdet.datasets.shapes(2, IMAGE_SIZE, seed=0)[0]


@pytest.fixture(scope="module")
def model(images):
    model = _tiny_ssd()
    model.compile()
    model.fit(images, {"boxes": BOXES, "labels": LABELS}, batch_size=2, verbose=0)
    return model


@pytest.mark.parametrize("mistake", sorted(EXPECTED_MESSAGES))
def test_fit_stops_on_the_first_bad_batch_before_any_weight_changes(model, images, mistake):
    weights = [weight.numpy() for weight in model.weights]
    step = int(model.optimizer.iterations)
    with pytest.raises(GroundtruthError, match=EXPECTED_MESSAGES[mistake]) as info:
        model.fit(images, _mistakes()[mistake], batch_size=2, shuffle=False, verbose=0)
    assert f"at training step {step}" in str(info.value)
    assert "\n" not in str(info.value)  # one line: no TensorFlow graph context
    assert int(model.optimizer.iterations) == step
    for weight, before in zip(model.weights, weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), before, err_msg=weight.path)


def test_evaluate_and_fit_validation_data_check_every_batch(model, images):
    bad = _mistakes()["zero_based_labels"]
    with pytest.raises(GroundtruthError, match="0-based class indices"):
        model.evaluate(images, bad, batch_size=2, verbose=0)
    with pytest.raises(GroundtruthError, match="0-based class indices"):
        model.fit(images, {"boxes": BOXES, "labels": LABELS}, batch_size=2, verbose=0,
                  validation_data=(images, bad))


def test_training_steps_after_the_checked_ones_cost_no_check(images):
    model = _tiny_ssd()
    model.compile()
    model.optimizer.iterations.assign(groundtruth_checks.CHECKED_TRAINING_STEPS)
    all_background = {"boxes": BOXES, "labels": np.where(LABELS >= 0, 0, -1)}
    history = model.fit(images, all_background, batch_size=2, verbose=0)
    assert history.history["localization_loss"] == [0.0]  # what an unchecked mistake does


class _TinyTwoStageExtractor(kdet.feature_extractors.FasterRCNNFeatureExtractor):
    """Two stride-2 convolutions for the RPN (stride 4); one convolution per RoI."""

    def __init__(self, **kwargs):
        super().__init__(first_stage_features_stride=4, **kwargs)
        self.body = [keras.layers.Conv2D(4, 3, strides=2, padding="same") for _ in range(2)]
        self.head = keras.layers.Conv2D(4, 3, padding="same")

    def preprocess(self, images):
        return images / 127.5 - 1.0

    def extract_proposal_features(self, images, training=None):
        return self.body[1](self.body[0](images))

    def extract_box_classifier_features(self, crops, training=None):
        return self.head(crops)


def test_faster_rcnn_is_checked_too(images):
    model = kdet.FasterRCNN(
        num_classes=2,
        feature_extractor=_TinyTwoStageExtractor(),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_anchor_generator=kdet.layers.GridAnchorGenerator(
            scales=(1.0,), aspect_ratios=(1.0,), base_anchor_size=(32, 32), anchor_stride=(4, 4)
        ),
        first_stage_max_proposals=8,
        second_stage_batch_size=8,
        initial_crop_size=4,
    )
    model.compile()
    with pytest.raises(GroundtruthError, match="box is inverted"):
        model.fit(images, _mistakes()["swapped_min_max"], batch_size=2, verbose=0)


@pytest.mark.cancels_mirrored_group
def test_bad_groundtruth_under_a_mirrored_strategy_raises_the_same_error(
    two_replica_strategy, images
):
    with two_replica_strategy.scope():
        model = _tiny_ssd()
        model.compile()
    with pytest.raises(GroundtruthError, match="0-based class indices"):
        model.fit(images, _mistakes()["zero_based_labels"], batch_size=2, verbose=0)


def test_a_nan_loss_stops_fit_naming_the_step_and_the_losses(images):
    model = _tiny_ssd()
    model.compile(optimizer=keras.optimizers.SGD(1e12))
    y = {"boxes": BOXES, "labels": LABELS}
    data = tf.data.Dataset.from_tensor_slices((images, y)).batch(2).repeat()
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step (\d+): training stopped\."):
        model.fit(data, steps_per_epoch=10, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations) < 10


def test_a_nan_callback_of_the_user_replaces_the_guard(images):
    model = _tiny_ssd()
    model.compile(optimizer=keras.optimizers.SGD(1e12))
    y = {"boxes": BOXES, "labels": LABELS}
    data = tf.data.Dataset.from_tensor_slices((images, y)).batch(2).repeat()
    history = model.fit(
        data, steps_per_epoch=10, verbose=0, shuffle=False,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert not np.isfinite(history.history["loss"][-1])
    callbacks = groundtruth_checks.with_nonfinite_loss_guard(None)
    assert [type(callback).__name__ for callback in callbacks] == ["StopOnNonFiniteLoss"]


def test_lr_sweep_still_ends_quietly_on_a_nan_loss(images):
    model = _tiny_ssd()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    y = {"boxes": BOXES, "labels": LABELS}
    data = tf.data.Dataset.from_tensor_slices((images, y)).batch(2).repeat()
    result = kdet.training.lr_sweep(model, data, min_lr=1e10, max_lr=1e12, num_steps=10)
    assert not np.isfinite(result["losses"][-1])
