"""kdet.SSD: fit / evaluate / predict, zero-box images, save/load, config, replica parity."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet.datasets
from kdet.feature_extractors import SSDFeatureExtractor
from kdet.feature_extractors import register_feature_extractor
from kdet.layers import SSDAnchorGenerator
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.models.ssd import SSD
from kdet.models.ssd import ConvolutionalBoxPredictor
from kdet.targets import HardExampleMiner

IMAGE_SIZE = 64


@register_feature_extractor("test_tiny_ssd")
class TinySSDFeatureExtractor(SSDFeatureExtractor):
    """Two stride-2 convolutions per level: maps at 1/8 and 1/16 of the input."""

    def __init__(self, depth=8, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.stem = [keras.layers.Conv2D(depth, 3, strides=2, padding="same", activation="relu")
                     for _ in range(3)]
        self.top = keras.layers.Conv2D(depth, 3, strides=2, padding="same", activation="relu")

    def preprocess(self, images):
        return images / 127.5 - 1.0

    def call(self, images, training=None):
        x = images
        for layer in self.stem:
            x = layer(x)
        return [x, self.top(x)]

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


def _tiny_ssd(**kwargs):
    return SSD(
        num_classes=3,
        feature_extractor=TinySSDFeatureExtractor(),
        image_resizer=FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
        **kwargs,
    )


def _shapes(num_images=8, seed=0):
    return kdet.datasets.shapes(num_images, IMAGE_SIZE, seed=seed, max_boxes=4)


def test_fit_evaluate_predict_report_named_losses_and_predictions():
    images, y = _shapes()
    model = _tiny_ssd(hard_example_miner=HardExampleMiner(iou_threshold=1.0))
    model.compile()
    history = model.fit(images, y, batch_size=4, epochs=1, verbose=0)
    assert {"loss", "localization_loss", "classification_loss"} <= set(history.history)
    evaluated = model.evaluate(images, y, batch_size=4, return_dict=True, verbose=0)
    assert set(evaluated) == {"loss", "localization_loss", "classification_loss"}
    assert all(np.isfinite(v) for v in evaluated.values())
    predictions = model.predict(images[:2], verbose=0)
    assert predictions["boxes"].shape == (2, 100, 4)
    assert predictions["labels"].shape == (2, 100)
    assert predictions["confidences"].shape == (2, 100)
    assert predictions["num_detections"].shape == (2,)
    valid = predictions["labels"] >= 0
    assert set(np.unique(predictions["labels"][valid])) <= {1, 2, 3}


def test_predict_boxes_are_in_pixels_of_the_given_images():
    model = _tiny_ssd(score_threshold=0.0)
    images = np.random.default_rng(0).integers(0, 255, (1, 90, 150, 3)).astype("uint8")
    predictions = model.predict(images, verbose=0)
    count = predictions["num_detections"][0]
    boxes = predictions["boxes"][0, :count]
    assert count > 0
    assert boxes[:, [0, 2]].max() <= 90 + 1e-3 and boxes[:, [1, 3]].max() <= 150 + 1e-3
    assert boxes.min() >= 0.0
    # xyxy output swaps the coordinates of the same detections.
    xyxy = _tiny_ssd(score_threshold=0.0, bounding_box_format="xyxy")
    xyxy.build(images.shape)
    xyxy.set_weights(model.get_weights())
    np.testing.assert_allclose(
        xyxy.predict(images, verbose=0)["boxes"][0, :count], boxes[:, [1, 0, 3, 2]], atol=1e-3
    )


def test_zero_box_images_give_zero_localization_loss_and_no_nan():
    images = np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), "uint8")
    y = {"boxes": -np.ones((2, 3, 4), "float32"), "labels": -np.ones((2, 3), "int32")}
    model = _tiny_ssd()
    model.compile()
    logs = model.train_on_batch(images, y, return_dict=True)
    assert logs["localization_loss"] == 0.0
    assert np.isfinite(logs["classification_loss"]) and logs["classification_loss"] > 0


def test_feature_extractor_by_registered_name():
    model = SSD(num_classes=3, feature_extractor="test_tiny_ssd",
                image_resizer=FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
                anchor_generator=SSDAnchorGenerator(num_layers=2))
    assert isinstance(model.feature_extractor, TinySSDFeatureExtractor)


def test_classes_alias_and_bad_groundtruth_error():
    images, y = _shapes(2)
    model = _tiny_ssd()
    model.compile()
    model.train_on_batch(images, {"boxes": y["boxes"], "classes": y["labels"]})
    with pytest.raises(ValueError, match="'boxes'"):
        model.train_on_batch(images, {"bbox": y["boxes"]})


def test_config_and_keras_file_round_trip(tmp_path):
    images, _ = _shapes(2)
    model = _tiny_ssd(score_threshold=0.01, iou_threshold=0.5, score_converter="softmax")
    before = model.predict(images, verbose=0)
    revived = SSD.from_config(model.get_config())
    assert _as_json(revived.get_config()) == _as_json(model.get_config())
    path = tmp_path / "ssd.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SSD)
    assert _as_json(loaded.get_config()) == _as_json(model.get_config())
    after = loaded.predict(images, verbose=0)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], atol=1e-5)


def _as_json(config):
    """Configs compared as saved: tuples and lists are the same JSON array."""
    return json.loads(json.dumps(config))


def _one_step(strategy, initial_weights, images, y):
    with strategy.scope():
        model = _tiny_ssd(hard_example_miner=HardExampleMiner(iou_threshold=1.0))
        model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
        model.set_weights(initial_weights)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    dataset = tf.data.Dataset.from_tensor_slices((images, y)).batch(8)
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return history.history, model.get_weights()


def test_one_and_two_replicas_give_the_same_losses_and_weights(two_replica_strategy):
    images, y = _shapes(8, seed=3)
    reference = _tiny_ssd()
    reference.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    initial = reference.get_weights()
    single_logs, single_weights = _one_step(tf.distribute.get_strategy(), initial, images, y)
    mirrored = two_replica_strategy
    double_logs, double_weights = _one_step(mirrored, initial, images, y)
    for name in ("loss", "localization_loss", "classification_loss"):
        np.testing.assert_allclose(double_logs[name], single_logs[name], rtol=1e-4)
    changed = [np.abs(a - b).max() for a, b in zip(single_weights, initial)]
    assert max(changed) > 1e-4  # the step did move the weights
    for single, double in zip(single_weights, double_weights):
        np.testing.assert_allclose(double, single, rtol=1e-4, atol=1e-5)


def test_training_step_of_a_regularized_model_reports_its_regularization_loss():
    images, y = _shapes(4)
    anchor_generator = SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6)
    predictor = ConvolutionalBoxPredictor(
        num_classes=3,
        num_anchors_per_location=anchor_generator.num_anchors_per_location(),
        kernel_regularizer=keras.regularizers.L2(0.5 * 0.04),
    )
    model = _tiny_ssd(box_predictor=predictor)
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    kernels = [w for w in model.trainable_weights if w.regularizer is not None]
    assert len(kernels) == 4  # the box and class convolutions of both maps
    expected = 0.5 * 0.04 * sum(float(np.sum(np.square(w.numpy()))) for w in kernels)
    model.compile()
    logs = model.train_on_batch(images, y, return_dict=True)
    assert set(logs) == {
        "loss", "localization_loss", "classification_loss", "regularization_loss"
    }
    np.testing.assert_allclose(logs["regularization_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        logs["loss"],
        logs["localization_loss"] + logs["classification_loss"] + expected,
        rtol=1e-5,
    )
    history = model.fit(images, y, batch_size=2, epochs=1, verbose=0)
    assert history.history["regularization_loss"][0] > 0
    evaluated = model.evaluate(images, y, batch_size=2, return_dict=True, verbose=0)
    assert evaluated["regularization_loss"] > 0


def test_freeze_batchnorm_keeps_moving_statistics_and_trains_gamma():
    keras.utils.set_random_seed(0)  # the same weights and batch whatever ran before
    model = SSD(
        num_classes=3,
        feature_extractor=kdet.feature_extractors.SSDMobileNetV2FeatureExtractor(
            depth_multiplier=0.5
        ),
        image_resizer=FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        freeze_batchnorm=True,
    )
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    batch_norms = [layer for layer in model._flatten_layers()
                   if isinstance(layer, kdet.layers.FusedBatchNormalization)]
    assert len(batch_norms) > 50 and all(layer.frozen for layer in batch_norms)
    before = {id(w): w.numpy().copy() for layer in batch_norms for w in layer.weights}
    images, y = _shapes(4)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.train_on_batch(images, y)
    for layer in batch_norms:
        for statistic in (layer.moving_mean, layer.moving_variance):
            np.testing.assert_array_equal(statistic, before[id(statistic)])
    assert any(np.abs(layer.gamma.numpy() - before[id(layer.gamma)]).max() > 0
               for layer in batch_norms)
    assert SSD.from_config(model.get_config()).freeze_batchnorm
