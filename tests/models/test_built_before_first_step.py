"""Every detector is fully built before its first training step, so whatever `fit` trained is
saved: `.keras` files and `save_weights` round-trip right after `fit` (no `predict` between),
and `kdet train` checkpoints a Faster R-CNN trained from scratch.

A Faster R-CNN trains through `forward_train`, which calls its sublayers but not `call`: Keras
(without a distribution strategy) builds a model only when a traced step calls it, so it once
stayed unbuilt after `fit`: `save_weights` raised, and a saved `.keras` file came back with
random RPN weights (boxes off by up to 105 px).
"""

import pathlib
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_pipeline
import tiny_ssd_extractor
import tiny_two_stage_extractor  # noqa: F401 (registers config_test_tiny_two_stage[_fpn])

import kdet
from kdet import cli
from kdet.configs import train_dataset
from kdet.training import train

IMAGE_SIZE = 64
_ZOO_PIPELINE = (
    pathlib.Path(__file__).parents[2]
    / "zoo"
    / "faster_rcnn_mobilenet_v2_deepforest"
    / "pipeline.yaml"
)


def _tiny_ssd():
    return tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE)


def _tiny_faster_rcnn(extractor="config_test_tiny_two_stage"):
    # Tiny user extractors (3-4 convolutions): what is checked is the model's own build path
    # (RPN, RoI heads, single- and multi-level crops), not the extractor's; a MobileNetV2 0.35
    # body cost ~10 s of tracing per test.
    return kdet.FasterRCNN(
        num_classes=2,
        feature_extractor=kdet.feature_extractors.build_feature_extractor(extractor),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_max_proposals=16,
        second_stage_batch_size=8,
    )


_DETECTORS = {
    "ssd": _tiny_ssd,
    "faster_rcnn": _tiny_faster_rcnn,
    "faster_rcnn_fpn": lambda: _tiny_faster_rcnn("config_test_tiny_two_stage_fpn"),
}


def _shapes(count=4, seed=2):
    return kdet.datasets.shapes(count, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=seed)


def _assert_same_weights(got, want):
    assert len(got.weights) == len(want.weights)
    for restored, trained in zip(got.weights, want.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), trained.numpy(), err_msg=trained.path)


@pytest.mark.parametrize("name", sorted(_DETECTORS))
def test_fit_then_save_round_trips_every_trained_weight(name, tmp_path):
    keras.utils.set_random_seed(0)
    images, y = _shapes()
    model = _DETECTORS[name]()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.fit(images, y, batch_size=2, epochs=1, verbose=0)
    assert model.built
    assert int(model.optimizer.iterations) == 2  # building from the first batch skips no step

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    _assert_same_weights(loaded, model)
    want = model.predict(images, verbose=0)
    got = loaded.predict(images, verbose=0)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-4, err_msg=key)

    model.save_weights(tmp_path / "model.weights.h5")
    fresh = _DETECTORS[name]()
    fresh.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    fresh.load_weights(tmp_path / "model.weights.h5")
    _assert_same_weights(fresh, model)


def test_a_dataset_builds_the_model_too():
    images, y = _shapes()
    dataset = tf.data.Dataset.from_tensor_slices((images, y)).batch(2).repeat()
    model = _tiny_faster_rcnn()
    model.compile()
    model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)
    assert model.built


class _OptimizerBuiltAtFirstBatch(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.built = self.model.optimizer.built


def test_the_optimizer_is_built_before_the_first_step_is_traced():
    # Keras (without a distribution strategy) builds the optimizer inside the first traced
    # step, which then traces twice; kdet builds it before (ObjectDetector.make_train_function).
    images, y = _shapes()
    model = _tiny_ssd()
    model.compile(optimizer=keras.optimizers.Adam())
    probe = _OptimizerBuiltAtFirstBatch()
    model.fit(images, y, batch_size=2, epochs=1, steps_per_epoch=1, verbose=0, callbacks=[probe])
    assert probe.built
    assert len(model.optimizer.variables) > 2 * len(model.trainable_variables)


def _faster_rcnn_pipeline(folder):
    """The zoo's deepforest Faster R-CNN pipeline.yaml at 64 px, with shapes records."""
    tiny_pipeline.write_pipeline(folder)
    text = _ZOO_PIPELINE.read_text()
    for old, new in [
        ("num_classes: 1", "num_classes: 2"),
        ("height: 300", f"height: {IMAGE_SIZE}"),
        ("width: 300", f"width: {IMAGE_SIZE}"),
        ("first_stage_max_proposals: 100", "first_stage_max_proposals: 16"),
        ("second_stage_batch_size: 32", "second_stage_batch_size: 8"),
        ("batch_size: 4", "batch_size: 2"),
        # Momentum SGD: Adam's update traces ~40 graph ops per variable (this test: 26 -> 21 s);
        # what is checked is the checkpoint, not the optimizer.
        ("adam_optimizer:", "momentum_optimizer:"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    text += (
        "train_input_reader:\n"
        f"  tf_record_input_reader: {{input_path: \"{folder / 'train.record'}\"}}\n"
        f"  label_map_path: \"{folder / 'label_map.pbtxt'}\"\n"
    )
    path = folder / "pipeline.yaml"
    path.write_text(text)
    return path


def test_kdet_train_checkpoints_a_faster_rcnn_trained_from_scratch(tmp_path):
    config = _faster_rcnn_pipeline(tmp_path)
    model_dir = tmp_path / "run"
    code = cli.main([
        "train", "--pipeline_config_path", str(config), "--model_dir", str(model_dir),
        "--num_train_steps", "2", "--checkpoint_every_n", "2",
    ])
    assert code == 0
    assert (model_dir / "ckpt-2.weights.h5").is_file()

    # The same from Python, and the checkpoint restores into a new model of the config.
    pipeline = kdet.configs.load_pipeline(config)
    model = pipeline.model
    model.compile()
    summary = train(model, train_dataset(pipeline), tmp_path / "python", num_steps=1,
                    checkpoint_every_n=1, verbose=0)
    assert summary["checkpoint"] is not None and summary["checkpoint"].name == "ckpt-1.weights.h5"
    restored = kdet.configs.load_pipeline(config).model
    restored.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    restored.load_weights(summary["checkpoint"])
    _assert_same_weights(restored, model)


def test_fit_on_a_dataset_passes_on_no_shuffle_warning():
    images, y = _shapes()
    dataset = tf.data.Dataset.from_tensor_slices((images, y)).batch(2)
    model = _tiny_ssd()
    model.compile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(dataset, epochs=1, verbose=0)
    assert [str(w.message) for w in caught if "shuffle" in str(w.message)] == []
