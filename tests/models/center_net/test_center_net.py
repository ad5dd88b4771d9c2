"""`kdet.CenterNet`: the data contract with keypoints, bad ground truth, globally normalized
losses and keypoint post-processing (fit, predict and saving: test_center_net_training.py)."""

import numpy as np
import pytest
import tensorflow as tf
from tiny_center_net import corner_keypoints
from tiny_center_net import corners_task
from tiny_center_net import tiny_center_net

import kdet
from kdet.models.groundtruth_checks import GroundtruthError
from kdet.models.groundtruth_checks import checked_before
from kdet.models.groundtruth_checks import groundtruth_errors_as_value_errors


@pytest.fixture(scope="module")
def data():
    images, y = kdet.datasets.shapes(4, 64, seed=3, max_boxes=3, num_classes=2)
    return images, corner_keypoints(y)


def test_model_without_keypoint_tasks_predicts_no_keypoints(data):
    model = tiny_center_net()
    assert model.extra_groundtruth == () and model.num_keypoints == 0
    assert "keypoints" not in model.detect(data[0])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda y: {**y, "keypoints": y["keypoints"][..., :1]}, r"\[batch, num_boxes, num_keyp"),
        (lambda y: {**y, "keypoint_visibilities": y["keypoint_visibilities"][..., :1]},
         "keypoint_visibilities"),
        (lambda y: {**y, "keypoints": np.where(np.arange(2) == 0, np.nan, y["keypoints"])},
         "labelled keypoint must have finite coordinates"),
        (lambda y: {**y, "keypoints": y["keypoints"] * 3.0}, "far outside the image"),
        (lambda y: {**y, "keypoints": y["keypoints"] / 64.0}, "keypoints look normalized"),
    ],
)
def test_malformed_keypoints_raise_clear_errors(data, change, message):
    images, y = data
    with pytest.raises(GroundtruthError, match=message), groundtruth_errors_as_value_errors():
        checked_before(images, change(y), 2, "yxyx")
    checked_before(images, y, 2, "yxyx")  # the unchanged ground truth passes


def test_two_feature_outputs_each_have_trained_heads(data):
    """Hourglass-104's layout (two feature outputs): a set of heads on each output, and the
    losses train all of them (the first output's are the intermediate supervision)."""
    images, y = data
    model = tiny_center_net(num_outputs=2, keypoint_tasks=[corners_task(per_keypoint_offset=True)])
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        losses = model.compute_losses(outputs, *model.groundtruth_to_relative(images, y),
                                      **model.groundtruth_extras(images, y))
        total = tf.add_n(list(losses.values()))
    assert len(losses) == 6 and all(np.isfinite(float(value)) for value in losses.values())
    heads = [head for name in model.prediction_heads for head in model.prediction_heads[name]]
    assert len(heads) == 2 * 6
    assert all(len(outputs[name]) == 2 for name in model.prediction_heads)
    weights = [weight for head in heads for weight in head.trainable_weights]
    for weight, gradient in zip(weights, tape.gradient(total, weights), strict=True):
        assert gradient is not None and np.any(np.asarray(gradient) != 0), weight.path


def test_losses_are_normalized_over_the_global_batch(data, two_replica_strategy):
    """Each replica's losses over the global counts: their sum over 2 replicas of 2 images is
    the loss of the 4 images on one device (Keras sums replica gradients)."""
    images, y = data
    model = tiny_center_net(keypoint_tasks=[corners_task(offset_peak_radius=1)])
    outputs = model(images)
    groundtruth = (*model.groundtruth_to_relative(images, y), model.groundtruth_extras(images, y))
    single = model.compute_losses(outputs, *groundtruth[:2], **groundtruth[2])

    def half(value, index):
        if isinstance(value, list):
            return [half(item, index) for item in value]
        return value if value.shape.rank == 1 else value[2 * index:2 * index + 2]

    def replica_inputs(context):
        index = context.replica_id_in_sync_group
        return (
            {name: half(value, index) for name, value in outputs.items()},
            tuple(half(value, index) for value in groundtruth[:2]),
            {name: half(value, index) for name, value in groundtruth[2].items()},
        )

    strategy = two_replica_strategy
    inputs = strategy.experimental_distribute_values_from_function(replica_inputs)

    @tf.function
    def replica_losses(inputs):
        def losses(replica_outputs, boxes_and_labels, extras):
            return model.compute_losses(replica_outputs, *boxes_and_labels, **extras)

        return strategy.run(losses, args=inputs)

    per_replica = replica_losses(inputs)
    assert set(per_replica) == set(single) and len(single) == 6
    for name, value in per_replica.items():
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        np.testing.assert_allclose(float(total), float(single[name]), rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("clip", [False, True])
def test_postprocess_keeps_or_clips_keypoints_outside_the_image(clip):
    model = tiny_center_net(num_classes=2, keypoint_tasks=[corners_task(
        clip_out_of_frame_keypoints=clip)], max_box_predictions=3)
    centers = np.full([1, 8, 8, 2], -9.0, np.float32)
    centers[0, 2, 3, 0] = 5.0  # one object of class 1 at cell (2, 3)
    centers[0, 6, 6, 1] = 4.0  # one of class 2 (no keypoints)
    regression = np.zeros([1, 8, 8, 4], np.float32)
    regression[0, 2, 3] = [-10.0, 1.0, 1.0, 2.0]  # top-left 10 cells above the image
    outputs = {
        "object_center": [tf.constant(centers)],
        "box_scale": [tf.fill([1, 8, 8, 2], 4.0)],
        "box_offset": [tf.fill([1, 8, 8, 2], 0.5)],
        "corners/keypoint_heatmap": [tf.fill([1, 8, 8, 2], -9.0)],  # no candidates
        "corners/keypoint_offset": [tf.zeros([1, 8, 8, 2])],
        "corners/keypoint_regression": [tf.constant(regression)],
        "scale": tf.ones([1, 2]),
        "input_size": tf.constant([32.0, 32.0]),
    }
    detections = model.postprocess(outputs)
    # Every other cell is a peak of its flat neighbourhood, scoring sigmoid(-9).
    np.testing.assert_array_equal(detections["labels"][0, :2], [1, 2])
    np.testing.assert_allclose(detections["boxes"][0, 0], np.array([0.5, 1.5, 4.5, 5.5]) / 8)
    keypoints, scores = detections["keypoints"][0], detections["keypoint_scores"][0]
    # Regressed keypoints (no candidate): cell + vector, in input pixels / 32.
    top_left = [0.0, 16 / 32] if clip else [-32 / 32, 16 / 32]
    np.testing.assert_allclose(keypoints[0], [top_left, [12 / 32, 20 / 32]], atol=1e-6)
    np.testing.assert_allclose(scores[0], [0.0 if clip else 0.1, 0.1], atol=1e-6)
    np.testing.assert_array_equal(keypoints[1], -1.0)  # class 2 has no keypoints
    np.testing.assert_array_equal(scores[1], 0.0)
