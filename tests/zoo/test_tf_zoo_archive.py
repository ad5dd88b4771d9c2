"""TFZooArchive: the pieces of unpacked TF1 / TF2 zoo archives; the model built from the
archive's pipeline.config; `kdet.zoo.load` of a TF zoo model through the checkpoint reader."""

import pathlib

import keras
import numpy as np
import pytest
from tf_zoo_archives import TINY_PIPELINE_CONFIG
from tf_zoo_archives import tf2_archive_files
from tf_zoo_archives import write_tar_gz
from tfod_references import RAW_TOLERANCE
from tfod_references import photo
from tfod_references import reference

import kdet.zoo
from kdet.zoo import tf_zoo
from kdet.zoo.download import ArchiveError
from kdet.zoo.tf_detection_zoo import get_tf_zoo_entry

NAME = "ssd_mobilenet_v2_320x320_coco17_tpu-8"
# A TF2 checkpoint of a small SSD MobileNetV2 in the layout of a zoo archive, written by the
# TF OD API itself (tools/tfod_reference); used once kdet.checkpoints reads TF2 checkpoints.
REFERENCE = pathlib.Path(__file__).parents[1] / "data" / "tfod_reference" / "ssd_mobilenet_v2"


def _write(folder, files):
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def test_locate_a_tf2_archive(tmp_path):
    _write(tmp_path, tf2_archive_files(NAME))
    for folder in (tmp_path, tmp_path / NAME):  # the unpacked folder or the model folder
        archive = kdet.zoo.TFZooArchive.locate(folder)
        assert archive.directory == tmp_path / NAME and archive.kind == "tf2"
        assert archive.pipeline_config == tmp_path / NAME / "pipeline.config"
        assert archive.checkpoint_prefix == tmp_path / NAME / "checkpoint" / "ckpt-0"
        assert archive.saved_model == tmp_path / NAME / "saved_model"
        assert archive.frozen_graph is None


def test_locate_a_tf1_archive(tmp_path):
    stem = "ssd_mobilenet_v2_coco_2018_03_29"
    files = {f"{stem}/{name}": b"x" for name in [
        "pipeline.config", "frozen_inference_graph.pb", "model.ckpt.index",
        "model.ckpt.data-00000-of-00001", "model.ckpt.meta", "saved_model/saved_model.pb",
    ]}
    # The state file of a TF1 archive names the training machine's path.
    files[f"{stem}/checkpoint"] = b'model_checkpoint_path: "/home/x/train/model.ckpt"\n'
    archive = kdet.zoo.TFZooArchive.locate(_write(tmp_path, files))
    assert archive.kind == "tf1" and archive.checkpoint_prefix == tmp_path / stem / "model.ckpt"
    assert archive.frozen_graph == tmp_path / stem / "frozen_inference_graph.pb"


def test_several_checkpoints_without_a_state_file_take_the_highest_step(tmp_path):
    files = {"m/pipeline.config": b"", "m/model.ckpt-900.index": b"",
             "m/model.ckpt-12000.index": b"", "m/model.ckpt-12000.data-00000-of-00001": b""}
    archive = kdet.zoo.TFZooArchive.locate(_write(tmp_path, files))
    assert archive.checkpoint_prefix.name == "model.ckpt-12000"


@pytest.mark.parametrize(
    "files, problem",
    [
        ({"m/pipeline.config": b"", "m/saved_model/saved_model.pb": b""},
         r"holds pipeline.config but no checkpoint: expected checkpoint/ckpt-N.index \(TF2\)"),
        ({"m/model.ckpt.index": b""}, r"holds no pipeline.config \(looked two folders deep\)"),
        ({"a/pipeline.config": b"", "b/pipeline.config": b""}, r"several pipeline.config"),
        ({"m/pipeline.config": b"", "m/model.ckpt-a.index": b"", "m/model.ckpt-b.index": b""},
         r"several checkpoints \(model.ckpt-a, model.ckpt-b\) and no checkpoint state file"),
    ],
)
def test_incomplete_or_ambiguous_archives_are_clear_errors(tmp_path, files, problem):
    with pytest.raises(ArchiveError, match=problem):
        kdet.zoo.TFZooArchive.locate(_write(tmp_path, files))


def test_the_model_is_built_float32_from_the_archives_pipeline_config(tmp_path):
    archive = kdet.zoo.TFZooArchive.locate(_write(tmp_path, tf2_archive_files(NAME)))
    assert "use_bfloat16: true" in TINY_PIPELINE_CONFIG
    model = tf_zoo.build_tf_zoo_model(archive)
    assert isinstance(model, kdet.SSD) and model.built and model.num_classes == 3
    assert {weight.dtype for weight in model.weights} == {"float32"}
    assert model.dtype_policy.compute_dtype == "float32"
    detections = model.predict(np.zeros([1, 64, 64, 3], "uint8"), verbose=0)
    assert detections["boxes"].shape == (1, 10, 4)


@pytest.fixture
def reference_archive(tmp_path):
    """The reference TF2 checkpoint packed as the zoo archive of NAME."""
    pytest.importorskip("kdet.checkpoints", reason="the TF OD API checkpoint reader")
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} (the reference checkpoint) is not here yet")
    files = {f"{NAME}/{path.relative_to(REFERENCE)}": path.read_bytes()
             for path in REFERENCE.rglob("*") if path.is_file()}
    return write_tar_gz(tmp_path / f"{NAME}.tar.gz", files)


def test_load_converts_the_checkpoint_once_and_caches_it(reference_archive, tmp_path):
    import kdet.checkpoints

    cache = tmp_path / "cache"
    model = kdet.zoo.load(NAME, cache_dir=cache, archive=reference_archive, progress=False)
    located = kdet.zoo.TFZooArchive.locate(REFERENCE.parent / REFERENCE.name)
    expected = tf_zoo.build_tf_zoo_model(located)
    kdet.checkpoints.restore_tfod_checkpoint(expected, located.checkpoint_prefix)
    for weight, value in zip(model.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(weight, value, err_msg=weight.path)
    folder = tf_zoo.model_cache_dir(get_tf_zoo_entry(NAME), cache)
    assert len(list(folder.glob("*.weights.h5"))) == 1
    # Afterwards the cached weights are read: the archive is no longer needed.
    again = kdet.zoo.load(NAME, cache_dir=cache, progress=False)
    for weight, value in zip(again.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(weight, value, err_msg=weight.path)
    fine_tune = kdet.zoo.load(NAME, num_classes=2, cache_dir=cache, progress=False)
    assert fine_tune.num_classes == 2
    extractor = keras.ops.convert_to_numpy(fine_tune.feature_extractor.weights[0])
    np.testing.assert_array_equal(extractor, expected.feature_extractor.weights[0])


def test_a_checkpoint_the_reader_cannot_read_is_a_clear_error_and_caches_nothing(tmp_path):
    pytest.importorskip("kdet.checkpoints", reason="the TF OD API checkpoint reader")
    archive = write_tar_gz(tmp_path / f"{NAME}.tar.gz", tf2_archive_files(NAME))  # bad ckpt
    with pytest.raises(ValueError, match=rf"kdet builds {NAME} from .*/pipeline.config but "
                                         r"cannot read its TF2 checkpoint into it: .*ckpt-0"):
        kdet.zoo.load(NAME, cache_dir=tmp_path / "cache", archive=archive, progress=False)
    folder = tf_zoo.model_cache_dir(get_tf_zoo_entry(NAME), tmp_path / "cache")
    assert not list(folder.glob("*.weights.h5*"))


COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def test_the_packaged_keypoint_label_map_is_cocos_person_with_its_17_keypoints():
    from kdet.data.label_map import read_label_map_items
    from kdet.data.label_map import read_label_map_keypoints

    path = tf_zoo.COCO_KEYPOINT_LABEL_MAP
    assert [(item.id, item.name) for item in read_label_map_items(path)] == [(1, "/m/01g317")]
    ids, labels = zip(*read_label_map_keypoints(path)[1])
    assert ids == tuple(range(17)) and labels == COCO_KEYPOINTS


def test_a_keypoint_label_map_path_of_another_machine_becomes_the_coco_one(tmp_path):
    # The zoo's keypoint configs name a label map of the machine that trained them.
    text = 'model { center_net { keypoint_label_map_path: "/train/label_map.pbtxt" } }\n'
    config = tmp_path / "archive" / "pipeline.config"
    config.parent.mkdir()
    config.write_text(text)
    (tmp_path / "copy").mkdir()
    copy = tf_zoo.with_coco_keypoint_label_map(config, tmp_path / "copy")
    assert copy.parent == tmp_path / "copy" and config.read_text() == text  # archive untouched
    assert copy.read_text() == text.replace(
        "/train/label_map.pbtxt", str(tf_zoo.COCO_KEYPOINT_LABEL_MAP))
    # A label map that is there, or no keypoints at all, leaves the config as it is.
    present = tmp_path / "label_map.pbtxt"
    present.write_text("item { id: 1 name: 'a' }")
    config.write_text(f"model {{ center_net {{ keypoint_label_map_path: '{present}' }} }}")
    assert tf_zoo.with_coco_keypoint_label_map(config, tmp_path / "copy") == config
    config.write_text("model { ssd { } }")
    assert tf_zoo.with_coco_keypoint_label_map(config, tmp_path / "copy") == config


CENTER_NET = "centernet_mobilenetv2fpn_512x512_coco17_kpts"
# A TF2 checkpoint of a tiny CenterNet with a keypoint task, written by the TF OD API
# (tests/checkpoints/test_tfod_parity_center_net.py checks what it computes).
CENTER_NET_REFERENCE = REFERENCE.parent / "center_net_mobilenet_v2_fpn_model"


def test_load_reads_a_center_net_with_keypoints(tmp_path):
    config = (CENTER_NET_REFERENCE / "pipeline.config").read_text().replace(
        '"label_map.pbtxt"', f'"{CENTER_NET_REFERENCE / "label_map.pbtxt"}"')
    files = {f"{CENTER_NET}/pipeline.config": config.encode()}
    for path in (CENTER_NET_REFERENCE / "checkpoint").iterdir():
        files[f"{CENTER_NET}/checkpoint/{path.name}"] = path.read_bytes()
    archive = write_tar_gz(tmp_path / f"{CENTER_NET}.tar.gz", files)
    model = kdet.zoo.load(CENTER_NET, cache_dir=tmp_path / "cache", archive=archive,
                          progress=False)
    assert isinstance(model, kdet.CenterNet) and model.num_keypoints == 4
    # The TF OD API's center heatmap of the photo's top-left 96x128 (the config's input size).
    images = photo()[None, :96, :128].astype("float32")
    np.testing.assert_allclose(model(images, training=False)["object_center"][0],
                               reference(CENTER_NET_REFERENCE.name)["predict/object_center/0"],
                               atol=RAW_TOLERANCE)
