"""Decoding and augmentation on a tf.data service: TF's own dispatcher and workers, other
processes or machines, instead of the training process.

`read_tfrecords(..., data_service=...)` and `kdet.configs.train_dataset(..., data_service=...)`
build the whole pipeline (read, decode, augment, resize, pad, batch) as always, then hand it to
`tf.data.experimental.service.distribute`: the workers run it and the training process only
receives finished batches. The dispatcher and workers are TensorFlow's
(`tf.data.experimental.service.DispatchServer` / `WorkerServer`); a worker needs TensorFlow
only (the dataset travels as a graph), and reads the record files itself, so it must see them
at the paths the config names. See docs/training.md, "Input on a tf.data service".

Example:
```python
# dispatcher:  python -c "import tensorflow as tf; s = tf.data.experimental.service; \
#     s.DispatchServer(s.DispatcherConfig(port=5050)).join()"
# each worker: python -c "import tensorflow as tf; s = tf.data.experimental.service; \
#     s.WorkerServer(s.WorkerConfig('dispatcher-host:5050', port=5051)).join()"
dataset = kdet.data.read_tfrecords("train-*.tfrecord", batch_size=32, image_size=320,
                                   augmentation=[{"random_horizontal_flip": {}}],
                                   num_epochs=0, data_service="grpc://dispatcher-host:5050")
```
"""

import dataclasses
import socket

import tensorflow as tf

from kdet.data.errors import DataError

#: `DataService.processing_mode`s: TF's names (`ShardingPolicy.OFF` and `DYNAMIC`).
PROCESSING_MODES = ("parallel_epochs", "distributed_epoch")
#: The only transport of TF's dispatcher and workers.
PROTOCOL = "grpc"
#: Seconds to wait for the dispatcher's port to accept a connection before saying it does not.
CONNECT_TIMEOUT_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class DataService:
    """Where and how a dataset runs on a tf.data service (the arguments of TF's `distribute`).

    Args:
        address: str, the dispatcher: `"host:port"` or `"grpc://host:port"`.
        processing_mode: `"parallel_epochs"` (each worker runs the whole pipeline, every worker
            a full epoch in its own shuffled order: with W workers an epoch of the service is
            W passes over the records, and a finite dataset gives each element W times) or
            `"distributed_epoch"` (the dispatcher hands out the record files, one at a time,
            to the workers: each element once per epoch, and at most as many workers busy as
            there are files). Defaults to `"parallel_epochs"`.
        job_name: str or None. Consumers of one job name share its elements, each element
            going to one of them (first come, first served): what trainers of one
            `MultiWorkerMirroredStrategy` need (TF then turns off its auto-sharding). None:
            each iteration of the dataset is a job of its own. A job name must not be reused
            by another training on the same service. Defaults to None.

    Raises:
        ValueError: an address that is not `[grpc://]host:port`, or an unknown mode.
    """

    address: str
    processing_mode: str = "parallel_epochs"
    job_name: str | None = None

    def __post_init__(self):
        host_and_port(self.address)
        if self.processing_mode not in PROCESSING_MODES:
            raise ValueError(
                f"data service {self.address}: processing_mode {self.processing_mode!r}; "
                f"expected one of {', '.join(PROCESSING_MODES)}"
            )
        if self.job_name is not None and not (isinstance(self.job_name, str) and self.job_name):
            raise ValueError(
                f"data service {self.address}: job_name {self.job_name!r}; expected a "
                "non-empty str or None"
            )

    @property
    def target(self):
        """`"grpc://host:port"`, the address as TF's `distribute` takes it."""
        return f"{PROTOCOL}://{self.address.split('://')[-1]}"


def as_data_service(data_service):
    """A `DataService` of a `read_tfrecords` / `train_dataset` `data_service` argument: a
    `DataService` as it is, an address str with the defaults, None as it is."""
    if data_service is None or isinstance(data_service, DataService):
        return data_service
    if isinstance(data_service, str):
        return DataService(data_service)
    raise TypeError(
        f"data_service: expected a dispatcher address str or a kdet.data.service.DataService, "
        f"got {type(data_service).__name__}"
    )


def host_and_port(address):
    """`(host, port)` of a dispatcher address `[grpc://]host:port` (`[::1]:port` for IPv6).

    Raises:
        ValueError: naming the address and the form expected (`TypeError`: not a str).
    """
    expected = "expected [grpc://]host:port, e.g. grpc://localhost:5050"
    if not isinstance(address, str):
        raise TypeError(f"data service address {address!r}: {expected}")
    protocol, _, rest = address.rpartition("://")
    if protocol not in ("", PROTOCOL):
        raise ValueError(
            f"data service address {address!r}: protocol {protocol!r}; the tf.data service "
            f"speaks {PROTOCOL} only; {expected}"
        )
    host, _, port = rest.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"data service address {address!r}: {expected}")
    return host, int(port)


def check_dispatcher(data_service, timeout=CONNECT_TIMEOUT_SECONDS):
    """Raises a `DataError` naming the address unless the dispatcher's port accepts a connection
    within `timeout` seconds.

    TF's `distribute` registers the dataset with the dispatcher and retries a dispatcher that
    does not answer for as long as it takes: a typo in the address, or a dispatcher not started
    yet, would wait silently.
    """
    host, port = host_and_port(data_service.address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else error.strerror or str(error)
        raise DataError(
            f"no tf.data service dispatcher answers at {data_service.address} ({reason} "
            f"within {timeout:g} s): start it first (tf.data.experimental.service.DispatchServer"
            ", see docs/training.md) or fix the address"
        ) from None


def distribute(dataset, data_service):
    """`dataset` run by the tf.data service `data_service` (a `DataService` or an address).

    Everything `dataset` does runs on the service's workers; iterating over the result
    receives the elements over gRPC. The dispatcher is checked first (`check_dispatcher`) when
    running eagerly.

    Args:
        dataset: a `tf.data.Dataset` (no Python functions inside: workers run its graph).
        data_service: a `DataService`, or a dispatcher address str.

    Returns:
        A `tf.data.Dataset` with `dataset`'s `element_spec`.
    """
    data_service = as_data_service(data_service)
    if tf.executing_eagerly():  # registering the dataset would wait for the dispatcher
        check_dispatcher(data_service)
    return dataset.apply(
        tf.data.experimental.service.distribute(
            data_service.processing_mode, data_service.target, job_name=data_service.job_name
        )
    )
