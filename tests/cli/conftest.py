"""Fixtures shared by the `kdet predict` tests."""

import keras
import pytest

import tiny_pipeline
from kdet.configs import load_pipeline


@pytest.fixture(scope="session")
def tiny_keras_model(tmp_path_factory):
    """`(tiny.keras, label_map.pbtxt)`: the tiny pipeline's untrained SSD (64 px, 2 classes),
    seeded (the same weights whatever ran before), saved once for every test module."""
    root = tmp_path_factory.mktemp("tiny_keras")
    keras.utils.set_random_seed(0)
    model = load_pipeline(tiny_pipeline.write_pipeline(root)).model
    model.build((None, tiny_pipeline.IMAGE_SIZE, tiny_pipeline.IMAGE_SIZE, 3))
    model.save(root / "tiny.keras")
    return root / "tiny.keras", root / "label_map.pbtxt"
