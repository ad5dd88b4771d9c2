import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib  # noqa: E402

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so 1-vs-2-replica parity tests can run a MirroredStrategy on this
# one-CPU machine. It must happen before TensorFlow initializes its devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / "kdet" / "datasets" / "data"


@pytest.fixture
def data_dir():
    """The bundled real sample data (deepforest tiles, quokka)."""
    return DATA_DIR
