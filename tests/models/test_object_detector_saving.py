"""A saved `.keras` detector loads compiled as it was saved, optimizer state included."""

import warnings

import keras
import numpy as np

import kdet
import tiny_ssd_extractor

IMAGE_SIZE = 64


def _tiny_ssd():
    return tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE)


def _load_without_warnings(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    assert [str(warning.message) for warning in caught] == []
    return loaded


def test_a_trained_detector_loads_compiled_with_its_optimizer_and_trains_on(tmp_path):
    images, y = kdet.datasets.shapes(4, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=1)
    model = _tiny_ssd()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(images, y, batch_size=2, epochs=1, verbose=0)
    model.save(tmp_path / "ssd.keras")

    loaded = _load_without_warnings(tmp_path / "ssd.keras")
    assert loaded.compiled
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 2
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.path)
    loaded.fit(images, y, batch_size=2, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 4


def test_an_uncompiled_detector_loads_uncompiled(tmp_path):
    model = _tiny_ssd()
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    model.save(tmp_path / "ssd.keras")
    assert not _load_without_warnings(tmp_path / "ssd.keras").compiled
