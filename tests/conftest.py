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


@pytest.fixture(scope="session")
def two_replica_strategy():
    """One MirroredStrategy over the two logical CPUs, shared by all parity tests.

    Separate MirroredStrategy objects in one process can collide on collective-op instance
    keys ("Shape mismatch in the collective instance"), so every test uses this one.
    """
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    return strategy


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Groups for pytest-xdist (`-n 2 --dist loadgroup`, as README and `.ci/run` run the
    suite): each test file is one group (its module fixtures are built once), except that
    every test using the session's `two_replica_strategy` runs in one group, in the order of
    a serial run, but for the tests marked `cancels_mirrored_group`, moved last: a replica's
    error inside a mirrored step cancels the strategy's collective group (a test checks that
    bad groundtruth raises there), after which a raw `strategy.run` reduction fails. It runs
    first: xdist reads the groups in its own hook, and without `tryfirst` it ran before this
    one and every test was its own unit."""
    for item in items:
        group = "mirrored" if "two_replica_strategy" in item.fixturenames else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
    cancelling = [item for item in items if item.get_closest_marker("cancels_mirrored_group")]
    items[:] = [item for item in items if item not in cancelling] + cancelling
