import numpy as np
import pytest
import tensorflow as tf
from tiny_detectors import assert_same_detections
from tiny_detectors import assert_top_detections_found
from tiny_detectors import images as _images
from tiny_detectors import tiny_faster_rcnn
from tiny_detectors import tiny_ssd as _ssd

from kdet.export import FrozenDetector


def _op_types(graph_def):
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


@pytest.fixture(scope="module")
def ssd():
    """A tiny SSD the tests below leave as it is."""
    return _ssd()


@pytest.fixture(scope="module")
def frozen_ssd(ssd):
    return FrozenDetector(ssd, progress=False)


def test_ssd_frozen_detections_equal_the_models_with_batch_norms_folded(ssd, frozen_ssd):
    model, frozen = ssd, frozen_ssd
    ops = _op_types(frozen.graph_def)
    assert not ops & {"FusedBatchNormV3", "VarHandleOp", "ReadVariableOp"}
    assert {"Conv2D", "DepthwiseConv2dNative", "BiasAdd"} <= ops
    images = _images()
    got = frozen(images)
    assert got["num_detections"].min() > 0
    assert_same_detections(got, model.predict_on_batch(images))


def test_frozen_graph_holds_each_weight_once_and_the_build_reports_its_stages(ssd, capsys):
    model = ssd
    frozen = FrozenDetector(model)
    # Seconds for a real detector: each stage is announced on stderr as it begins.
    stages = [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()]
    assert stages == [
        f"Freezing the detector: {stage}" for stage in (
            "tracing", "weights to constants", "folding batch norms", "loading the frozen graph",
            "done",
        )
    ]
    FrozenDetector(model, progress=False)
    assert capsys.readouterr().err == ""
    constant_bytes = sum(
        len(node.attr["value"].tensor.tensor_content)
        for node in frozen.graph_def.node if node.op == "Const"
    )
    weight_bytes = sum(4 * int(np.prod(weight.shape)) for weight in model.weights)
    # Not twice: the unfolded copies are pruned. A little more: shapes, anchor sizes, ….
    assert 0.9 * weight_bytes < constant_bytes < 1.1 * weight_bytes


def test_frozen_detector_is_a_snapshot_and_takes_any_image_size_and_dtype():
    model = _ssd()  # its own: the test zeroes its weights
    frozen = FrozenDetector(model)
    images = np.concatenate([_images(), _images()], axis=2)  # 96 x 192
    before = model.predict_on_batch(images)
    for variable in model.trainable_variables:
        variable.assign(tf.zeros_like(variable))
    assert_same_detections(frozen(images), before)
    assert_same_detections(frozen(images.astype("float32")), before)


def test_faster_rcnn_freezes_too():
    model = tiny_faster_rcnn()
    images = _images()
    assert_top_detections_found(FrozenDetector(model)(images), model.predict_on_batch(images))


@pytest.mark.parametrize("shape", [(96, 96, 3), (1, 96, 96, 1)])
def test_bad_image_shapes_are_rejected_with_the_expected_shape(frozen_ssd, shape):
    frozen = frozen_ssd
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]; got shape"):
        frozen(np.zeros(shape, "uint8"))
