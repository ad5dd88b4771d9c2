"""`read_tfrecords(data_service=...)`: decoding and augmentation on a tf.data service (TF's
dispatcher and two workers, in this process on loopback), against the in-process pipeline."""

import collections
import socket
import types

import numpy as np
import pytest
import tensorflow as tf
import tiny_pipeline

import kdet
from kdet.configs import load_pipeline
from kdet.configs import train_dataset
from kdet.data import DataError
from kdet.data import read_tfrecords
from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord
from kdet.data.service import DataService
from kdet.datasets.samples import DEEPFOREST_LABEL_MAP
from kdet.training.pipeline_training import _shared_job

pytestmark = pytest.mark.timeout(120)

SERVICE = tf.data.experimental.service


@pytest.fixture(scope="module")
def service():
    """A dispatcher and two workers on free loopback ports; yields the dispatcher's target.

    The workers' heartbeat every 0.1 s (TF's default: 30 s) lets them stop at once.
    """
    dispatcher = SERVICE.DispatchServer(SERVICE.DispatcherConfig(port=0))
    address = dispatcher.target.split("://")[1]
    workers = [
        SERVICE.WorkerServer(SERVICE.WorkerConfig(address, heartbeat_interval_ms=100))
        for _ in range(2)
    ]
    yield dispatcher.target
    for server in [*workers, dispatcher]:
        server.stop()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Two record files, each with both real deepforest tiles (JPEG), source ids 0..3."""
    folder = tmp_path_factory.mktemp("records")
    tiles = [kdet.datasets.deepforest(name) for name in ("OSBS_029", "SOAP_061")]
    for shard in range(2):
        write_tfrecord(
            [
                create_example_from_arrays(image, y["boxes"], y["labels"], DEEPFOREST_LABEL_MAP,
                                           box_format="yxyx", source_id=str(2 * shard + index))
                for index, (image, y) in enumerate(tiles)
            ],
            folder / f"train-{shard}.record",
        )
    return str(folder / "train-*.record")


def elements(dataset):
    """`{source_id: [(image, boxes, labels), ...]}` of a batched dataset with metadata."""
    found = collections.defaultdict(list)
    for image, y, metadata in dataset.unbatch().as_numpy_iterator():
        found[int(metadata["source_id"])].append((image, y["boxes"], y["labels"]))
    return found


def read(records, **settings):
    return read_tfrecords(records, batch_size=2, image_size=(64, 64), return_metadata=True,
                          **settings)


@pytest.fixture(scope="module")
def in_process(records):
    """The elements of the pipeline in this process, without augmentation."""
    return elements(read(records))


def assert_copies(found, expected, copies):
    assert sorted(found) == sorted(expected)
    for source_id, (element,) in expected.items():
        assert len(found[source_id]) == copies, source_id
        for copy in found[source_id]:
            for got, want in zip(copy, element):
                np.testing.assert_array_equal(got, want)


def test_each_worker_runs_a_whole_epoch_in_parallel_epochs(service, records, in_process):
    # Two workers, each a full epoch: every element twice, decoded and resized as in-process.
    # Skipping the service, or one worker doing nothing, would give each one once.
    assert_copies(elements(read(records, data_service=service)), in_process, copies=2)


def test_distributed_epoch_gives_each_element_once(service, records, in_process):
    shared = DataService(service, processing_mode="distributed_epoch")
    assert_copies(elements(read(records, data_service=shared)), in_process, copies=1)


def test_augmented_batches_come_through_the_service(service, records, in_process):
    augmented = read(records, augmentation=[{"random_horizontal_flip": {}}],
                     data_service=service)
    found = elements(augmented)
    assert sorted(found) == sorted(in_process)
    for source_id, copies in found.items():
        ((image, _, labels),) = in_process[source_id]
        assert len(copies) == 2
        for got_image, _, got_labels in copies:  # each image as it is, or mirrored
            error = min(np.abs(got_image - image).max(), np.abs(got_image - image[:, ::-1]).max())
            assert error < 1e-3
            np.testing.assert_array_equal(got_labels, labels)


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dispatcher_that_does_not_answer_is_named_at_once(records, tmp_path):
    address = f"grpc://127.0.0.1:{closed_port()}"
    with pytest.raises(DataError, match=f"no tf.data service dispatcher answers at {address}"):
        read(records, data_service=address)
    # train_dataset passes it on (TF itself would retry for as long as it takes).
    pipeline = load_pipeline(tiny_pipeline.write_pipeline(tmp_path))
    with pytest.raises(DataError, match=address):
        train_dataset(pipeline, data_service=address)


@pytest.mark.parametrize(
    ("data_service", "error", "match"),
    [
        ("localhost", ValueError, "'localhost': expected \\[grpc://\\]host:port"),
        ("http://localhost:5050", ValueError, "protocol 'http'"),
        (DataService("localhost:5050"), ValueError, "seed=3 with the parallel_epochs"),
        (5050, TypeError, "got int"),
    ],
)
def test_bad_arguments_fail_before_any_connection(records, data_service, error, match):
    with pytest.raises(error, match=match):
        read(records, seed=3, data_service=data_service)


def test_trainers_of_one_multi_worker_strategy_share_a_job(tmp_path):
    worker = types.SimpleNamespace(cluster_resolver=types.SimpleNamespace(task_type="worker"))
    shared = _shared_job("localhost:5050", worker, tmp_path / "run", (1000, "ckpt-1000"))
    assert shared == DataService("localhost:5050", job_name="kdet-train:run:1000")
    named = DataService("localhost:5050", job_name="mine")
    assert _shared_job(named, worker, tmp_path / "run", None) is named
    one_process = tf.distribute.get_strategy()
    assert _shared_job("localhost:5050", one_process, tmp_path, None).job_name is None


def test_kdet_train_data_service_flag_reaches_the_input(tmp_path, capsys):
    from kdet import cli

    address = f"grpc://127.0.0.1:{closed_port()}"
    config = tiny_pipeline.write_pipeline(tmp_path)
    argv = ["train", "--pipeline_config_path", str(config), "--model_dir", str(tmp_path / "run"),
            "--data_service", address]
    assert cli.main(argv) != 0
    assert f"no tf.data service dispatcher answers at {address}" in capsys.readouterr().err
