import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib  # noqa: E402

import pytest  # noqa: E402

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / "kdet" / "datasets" / "data"


@pytest.fixture
def data_dir():
    """The bundled real sample data (deepforest tiles, quokka)."""
    return DATA_DIR
