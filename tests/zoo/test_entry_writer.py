"""kdet.zoo.write_zoo_entry and the "file" weights source: a trained model as a zoo folder."""


import h5py
import keras
import numpy as np
import pytest

import kdet.zoo
from kdet.data.errors import DataError
from kdet.utils.verified_files import file_sha256
from kdet.zoo import zoo
from test_zoo import TINY_SIZE
from test_zoo import FakeConversion
from test_zoo import _write_entry

LABEL_MAP = {1: "a", 2: "b", 3: "c"}
IMAGES = np.random.default_rng(1).uniform(0, 255, [2, TINY_SIZE, TINY_SIZE, 3]).astype("float32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny zoo SSD with fixed weights, compiled and trained one step (optimizer state);
    one for the module (a test that changes a weight puts it back)."""
    model = kdet.zoo.ZooEntry(_write_entry(tmp_path_factory.mktemp("source"), {})).build()
    FakeConversion()(None, model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    y = {"boxes": np.array([[[2, 2, 20, 20]], [[8, 4, 30, 28]]], "float32"),
         "labels": np.array([[1], [3]], "int32")}
    model.fit(IMAGES, y, batch_size=2, epochs=1, verbose=0)
    return model


@pytest.fixture
def zoo_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "zoo")
    return tmp_path / "zoo"


def test_a_written_entry_loads_from_the_zoo_with_float16_weights(trained, zoo_dir, tmp_path):
    entry = kdet.zoo.write_zoo_entry(
        trained, zoo_dir / "trees", LABEL_MAP, {"dataset": "tiny", "metrics": []}
    )
    assert sorted(p.name for p in entry.directory.iterdir()) == [
        "config.json", "label_map.pbtxt", "metadata.json", "model.weights.h5"
    ]
    assert sorted(p.name for p in zoo_dir.iterdir()) == ["trees"]  # no temporary folder left
    weights = entry.metadata["weights"]
    assert weights == {
        "source": "file",
        "path": "model.weights.h5",
        "sha256": file_sha256(entry.directory / "model.weights.h5"),
        "dtype": "float16",
    }
    assert entry.metadata["dataset"] == "tiny" and entry.metadata["metrics"] == []
    assert entry.metadata["num_params"] == trained.count_params()
    assert entry.label_map == LABEL_MAP
    with h5py.File(entry.directory / "model.weights.h5") as file:
        assert "optimizer" not in file
        dtypes = set()
        file.visititems(lambda _, item: dtypes.add(item.dtype) if hasattr(item, "dtype") else None)
    assert dtypes == {np.dtype("float16")}

    model = kdet.zoo.load("trees", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # packaged weights are not cached
    for loaded, original in zip(model.weights, trained.weights, strict=True):
        assert loaded.dtype == "float32"
        np.testing.assert_allclose(loaded, original, rtol=1e-3, atol=1e-6, err_msg=loaded.path)
    expected = trained.predict(IMAGES, verbose=0)
    actual = model.predict(IMAGES, verbose=0)
    np.testing.assert_allclose(actual["confidences"], expected["confidences"], atol=2e-3)

    fine_tune = kdet.zoo.load("trees", num_classes=5)
    assert fine_tune.num_classes == 5
    np.testing.assert_array_equal(
        fine_tune.feature_extractor.weights[0], model.feature_extractor.weights[0]
    )


def test_float32_weights_are_kept_exactly(trained, zoo_dir):
    kdet.zoo.write_zoo_entry(trained, zoo_dir / "exact", LABEL_MAP, {}, weights_dtype="float32")
    model = kdet.zoo.load("exact")
    for loaded, original in zip(model.weights, trained.weights, strict=True):
        np.testing.assert_array_equal(loaded, original, err_msg=loaded.path)


def test_values_beyond_float16_stay_float32(trained, zoo_dir):
    kernel = trained.feature_extractor.weights[0]
    original = kernel.numpy()
    kernel.assign(np.full(kernel.shape, 1e6, "float32"))
    try:
        kdet.zoo.write_zoo_entry(trained, zoo_dir / "big", LABEL_MAP, {})
        model = kdet.zoo.load("big")
        np.testing.assert_array_equal(model.feature_extractor.weights[0], kernel)
        bias = model.feature_extractor.weights[1]
        np.testing.assert_allclose(bias, trained.feature_extractor.weights[1], rtol=1e-3)
    finally:
        kernel.assign(original)


def test_damaged_or_missing_packaged_weights_are_clear_errors(trained, zoo_dir):
    entry = kdet.zoo.write_zoo_entry(trained, zoo_dir / "trees", LABEL_MAP, {})
    path = entry.directory / "model.weights.h5"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"trees/model.weights.h5 has sha256 [0-9a-f]{64}, but "
                       r".*trees/metadata.json records [0-9a-f]{64}: the file is damaged"):
        kdet.zoo.load("trees")
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"trees/model.weights.h5, the weights of zoo "
                       "model trees named in its metadata.json, is missing; reinstall kdet"):
        kdet.zoo.load("trees")


def test_nothing_is_overwritten_or_left_half_written(trained, zoo_dir):
    entry = kdet.zoo.write_zoo_entry(trained, zoo_dir / "trees", LABEL_MAP, {})
    before = {p.name: p.read_bytes() for p in entry.directory.iterdir()}
    with pytest.raises(FileExistsError, match="trees already exists"):
        kdet.zoo.write_zoo_entry(trained, zoo_dir / "trees", LABEL_MAP, {})
    assert {p.name: p.read_bytes() for p in entry.directory.iterdir()} == before
    with pytest.raises(DataError):
        kdet.zoo.write_zoo_entry(trained, zoo_dir / "bad", {0: "background"}, {})
    assert sorted(p.name for p in zoo_dir.iterdir()) == ["trees"]
    with pytest.raises(ValueError, match="weights_dtype must be 'float16' or 'float32'"):
        kdet.zoo.write_zoo_entry(trained, zoo_dir / "bf16", LABEL_MAP, {}, weights_dtype="bf16")


def test_a_staged_entry_left_by_a_killed_run_is_not_listed(trained, zoo_dir):
    kdet.zoo.write_zoo_entry(trained, zoo_dir / "trees", LABEL_MAP, {})
    staged = zoo_dir / ".tmp-123-other"
    staged.mkdir()
    (staged / "metadata.json").write_text("{}")
    assert kdet.zoo.list() == ["trees"]
