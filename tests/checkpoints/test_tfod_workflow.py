"""A TF OD API user's workflow on TF OD API-made checkpoints: fine-tune from one with
`kdet train` (a `fine_tune_checkpoint` of type "detection" in the config, as the pets sample
configs have it), and serve one with `kdet export --trained_checkpoint_dir`, whose SavedModel
gives the TF OD API's own export's detections (`exported/…` of the reference, written by its
`exporter_lib_v2`)."""

import json
import re
import tarfile
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tfod_reference_extractors  # noqa: F401  (registers the references' narrow ResNets)
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detection_sets
from tfod_references import photo
from tfod_references import reference

import kdet
from kdet import cli
from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import load_tfod_model
from kdet.configs import load_pipeline
from kdet.configs import restore_fine_tune_checkpoint
from kdet.configs import restored_pipeline
from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord

# The references exported by the TF OD API's `exporter_lib_v2` whose architecture kdet maps.
EXPORTED = ["ssd_mobilenet_v2", "faster_rcnn_resnet50"]
# A pets-style fine-tune (`faster_rcnn_resnet101_pets.config`'s shape): another number of
# classes, the checkpoint's feature extractor.
FINE_TUNED = ["ssd_mobilenet_v2", "faster_rcnn_resnet50"]
LABELS = {1: "cat", 2: "dog"}
# Where the weights a "detection" restore leaves new live: the box predictor (SSD), the RPN
# and the second-stage heads (Faster R-CNN; `box_classifier` is the second stage's extractor).
HEADS = ("box_predictor/", "region_proposal_network/", "roi_heads/")


def _write_records(folder, labels=LABELS):
    """Two small images with one box each (classes 1 and 2) and the label map of `labels`."""
    random = np.random.default_rng(0)
    examples = []
    for index, label in enumerate(LABELS):
        image = random.integers(0, 256, (96 + 16 * index, 120, 3), dtype=np.uint8)
        box = np.array([[20.0, 30.0, 80.0, 100.0]], "float32")
        image[20:80, 30:100] = (200, 40 * label, 40)
        examples.append(create_example_from_arrays(
            image, box, np.array([label]), LABELS, box_format="yxyx", image_format="png"))
    write_tfrecord(examples, folder / "train.record")
    (folder / "label_map.pbtxt").write_text(
        "".join(f"item {{ id: {i} name: '{name}' }}\n" for i, name in labels.items()))
    return folder / "train.record", folder / "label_map.pbtxt"


def _reference_config(name):
    """The reference's pipeline.config text; for a Faster R-CNN ResNet, its extractor `type` at
    the reference's width (`tfod_reference_extractors`)."""
    text = (REFERENCES / name / "pipeline.config").read_text()
    return text.replace('type: "faster_rcnn_resnet50_keras"',
                        'type: "reference_faster_rcnn_resnet50_keras"')


def _with_inputs(name, folder, labels=LABELS):
    """The reference's config text with its inputs at tiny records of `labels`."""
    record, label_map = _write_records(folder, labels)
    text = _reference_config(name)
    text = re.sub(r'input_path: "[^"]*"', f'input_path: "{record}"', text)
    return re.sub(r'label_map_path: "[^"]*"', f'label_map_path: "{label_map}"', text)


def _fine_tune_config(name, folder):
    """The reference's pipeline.config as a user fine-tuning from its checkpoint writes it."""
    text = _with_inputs(name, folder)
    text = re.sub(r"num_classes: \d+", f"num_classes: {len(LABELS)}", text)
    text = re.sub(r"batch_size: \d+", "batch_size: 2", text)
    checkpoint = REFERENCES / name / "checkpoint" / "ckpt-0"
    text = re.sub(r'fine_tune_checkpoint: "[^"]*"', f'fine_tune_checkpoint: "{checkpoint}"', text)
    text = re.sub(r'fine_tune_checkpoint_type: "[^"]*"', 'fine_tune_checkpoint_type: "detection"',
                  text)
    assert f'fine_tune_checkpoint: "{checkpoint}"' in text, "the reference config has none"
    path = folder / "pipeline.config"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", FINE_TUNED)
def test_a_detection_fine_tune_starts_from_the_checkpoints_feature_extractor(name, tmp_path):
    pipeline = load_pipeline(_fine_tune_config(name, tmp_path))
    restore = restore_fine_tune_checkpoint(pipeline)
    checkpoint = TFODCheckpoint.open(REFERENCES / name / "checkpoint")
    weights = kdet.training.variable_names(pipeline.model)
    # Every feature extractor weight holds the checkpoint's value, the heads are new (3 → 2
    # classes): what the TF OD API's TF2 "detection" restore does.
    assert restore.restored and not restore.shape_differs and not restore.missing
    restored = restore.checkpoint_keys
    assert sorted(restored) == sorted(restore.restored)
    values = checkpoint.read_all(list(restored.values()))
    for path, key in restored.items():
        assert key.startswith("model/_feature_extractor")
        np.testing.assert_array_equal(weights[path].numpy(), values[key])
    assert restore.outside_type
    assert all(name.startswith(HEADS) for name in restore.outside_type)
    assert f"initialized from {checkpoint.prefix} (detection): restored {len(restored)}" in str(
        restore)


@pytest.mark.parametrize("name", FINE_TUNED)
def test_kdet_train_fine_tunes_from_a_tf_od_api_checkpoint(name, tmp_path, capsys):
    config = _fine_tune_config(name, tmp_path)
    model_dir = tmp_path / "model"
    argv = ["train", "--pipeline_config_path", str(config), "--model_dir", str(model_dir),
            "--num_train_steps", "2", "--import", "tfod_reference_extractors"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"initialized from \S+ckpt-0 \(detection\): restored \d+ weights", out)
    assert (model_dir / "ckpt-2.weights.h5").is_file()


@pytest.fixture(scope="module", params=EXPORTED)
def exported(request, tmp_path_factory):
    """`(name, export folder)` of `kdet export` of the reference's TF OD API checkpoint folder."""
    name = request.param
    folder = tmp_path_factory.mktemp("export")
    config = folder / "pipeline.config"
    config.write_text(_reference_config(name))
    output = folder / name
    argv = ["export", "--pipeline_config_path", str(config),
            "--trained_checkpoint_dir", str(REFERENCES / name / "checkpoint"),
            "--output_directory", str(output), "--import", "tfod_reference_extractors"]
    assert cli.main(argv) == 0
    return name, output


def test_kdet_export_of_a_tf_od_api_checkpoint_serves_the_tf_od_api_exports_detections(
        exported):
    name, output = exported
    serving = tf.saved_model.load(str(output / "saved_model")).signatures["serving_default"]
    result = {key: value.numpy() for key, value in
              serving(input_tensor=tf.constant(photo()[None])).items()}
    count = int(result["num_detections"][0])
    assert_same_detection_sets(
        result["detection_boxes"][0][:count],
        result["detection_scores"][0][:count],
        result["detection_classes"][0][:count],
        reference(name),
        "exported/",
    )


def test_the_export_keeps_the_tf_od_api_checkpoint_as_a_checkpoint_folder(exported):
    name, output = exported
    copied = TFODCheckpoint.open(output / "checkpoint")
    original = TFODCheckpoint.open(REFERENCES / name / "checkpoint")
    assert copied.prefix.name == original.prefix.name and copied.shapes == original.shapes
    assert (output / "pipeline.config").read_text() == _reference_config(name)


@pytest.mark.parametrize("name", EXPORTED)
def test_kdet_eval_evaluates_the_checkpoints_of_a_tf_od_api_folder(name, tmp_path, capsys):
    # The reference model's 3 classes; the records hold 2 of them.
    text = _with_inputs(name, tmp_path, {**LABELS, 3: "bird"})
    config = tmp_path / "pipeline.config"
    config.write_text(text)
    argv = ["eval", "--pipeline_config_path", str(config), "--model_dir", str(tmp_path / "m"),
            "--checkpoint_dir", str(REFERENCES / name / "checkpoint"), "--timeout", "0",
            "--import", "tfod_reference_extractors"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"step 0 \(ckpt-0, [\d.]+ s\): DetectionBoxes_Precision/mAP [\d.]+", out)
    metrics = json.loads((tmp_path / "m" / "eval" / "metrics.json").read_text())
    assert list(metrics) == ["0"]


def test_a_tf_od_api_checkpoint_is_restored_float32_whatever_use_bfloat16_says(tmp_path):
    # TF2 zoo configs set use_bfloat16 (a TPU training switch); kdet would train them under
    # mixed_bfloat16, but a restored TF OD API checkpoint serves in float32, as its exporter.
    name = "ssd_mobilenet_v2"
    text = (REFERENCES / name / "pipeline.config").read_text()
    assert "use_bfloat16" not in text
    config = tmp_path / "pipeline.config"
    config.write_text(text.replace("train_config {", "train_config {\n  use_bfloat16: true", 1))
    assert load_pipeline(config).model.dtype_policy.name == "mixed_bfloat16"
    model = restored_pipeline(config, REFERENCES / name / "checkpoint").model
    assert model.dtype_policy.name == "float32"
    assert all(weight.dtype == "float32" for weight in model.weights)
    outputs = model(photo()[None], training=False)
    np.testing.assert_allclose(outputs["class_logits"],
                               reference(name)["predict/class_predictions_with_background"],
                               atol=RAW_TOLERANCE)


def test_load_tfod_model_takes_a_zoo_archive_or_its_unpacked_folder(tmp_path, monkeypatch):
    name = "ssd_mobilenet_v2"
    archive = tmp_path / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # laid out as the TF2 zoo archives are
        tar.add(REFERENCES / name, arcname=f"{name}_128x128_coco17/")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temporary"))
    (tmp_path / "temporary").mkdir()
    for source in (archive, REFERENCES / name):
        model, restore = load_tfod_model(source)
        assert not restore.not_restored and restore.checkpoint.prefix.name == "ckpt-0"
        outputs = model(photo()[None], training=False)
        np.testing.assert_allclose(
            outputs["box_encodings"], reference(name)["predict/box_encodings"],
            atol=RAW_TOLERANCE)
    # The archive was unpacked into a temporary folder, removed afterwards.
    assert not list((tmp_path / "temporary").iterdir())
