"""The TF OD API's own sample configs run in kdet unchanged except for their file paths.

Every config in `tests/data/tfod_configs/` (copies of `samples/configs/*.config` and
`configs/tf2/*.config` of tensorflow/models; source, commit and licence in its README) whose
meta-architecture and feature extractor kdet has (`check_architecture` passes) must:
- load: `load_pipeline` builds its model, optimizer, learning rate schedule, augmentation and
  settings from the text as written (every config);
- read its inputs: `train_dataset` gives a batch of `train_config.batch_size` images through the
  config's augmentation and the model's resizer, `eval_dataset` a batch of `eval_config` (one
  config per kind of input pipeline: augmentation steps and resizer);
- train and predict: the model the config describes (full size) takes a training step and
  predicts (two configs; the benchmark below runs the others). A step at
  the configs' batch sizes (up to 128 images of up to 1024²) would take minutes each on a CPU,
  so the step trains on the first image of the config's own batch.
`benchmarks/sample_configs_status.py --train` runs all three on every config.

Only paths change: `input_path` and `label_map_path` point at a tiny record of real-looking
images (one class, id 1: every config has `num_classes` ≥ 1), `fine_tune_checkpoint` is
emptied (TF OD API checkpoints are issue 16).
"""

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.configs import ConfigError
from kdet.configs import eval_dataset
from kdet.configs import load_pipeline
from kdet.configs import train_dataset
from kdet.configs.model_builder import check_architecture
from kdet.configs.text_format import parse_file
from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "data" / "tfod_configs"
# Configs whose training step and prediction the test runs: an SSD FPN with a weight-shared
# predictor and an overridden body, a Faster R-CNN with a keep-aspect-ratio resizer. At the
# configs' input sizes a first step costs 15 s to minutes on a 2-core CPU, so the others run
# in `benchmarks/sample_configs_status.py --train` (results in benchmarks/README.md).
TRAINED = {
    "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config",
    "faster_rcnn_resnet50_pets.config",
}


def _in_kdet(path):
    """Whether kdet has the config's meta-architecture and feature extractor."""
    try:
        check_architecture(parse_file(path))
    except ConfigError:
        return False
    return True


SAMPLE_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.config") if _in_kdet(p))


def _input_kind(name):
    """What decides how a config's input pipeline runs: its augmentation steps, its resizer."""
    root = parse_file(CONFIGS / name)
    train = root.first("train_config")
    steps = [option.value.fields[0].name for option in train.get("data_augmentation_options")]
    (meta_architecture,) = root.first("model").fields
    resizer = meta_architecture.value.first("image_resizer").fields[0].name
    return tuple(steps), resizer


# One config per kind of input pipeline (reading each config's inputs would cost minutes).
INPUT_KINDS = {}
for _name in SAMPLE_CONFIGS:
    INPUT_KINDS.setdefault(_input_kind(_name), _name)


def write_inputs(folder):
    """Writes a record of 4 images with one box each (class id 1) and its label map into
    `folder`; returns `(record, label_map)`."""
    random = np.random.default_rng(0)
    examples = []
    for index in range(4):
        height, width = 96 + 16 * index, 128 - 8 * index
        image = random.integers(0, 256, (height, width, 3), dtype=np.uint8)
        box = np.array([[0.2 * height, 0.25 * width, 0.8 * height, 0.75 * width]], "float32")
        image[int(box[0, 0]):int(box[0, 2]), int(box[0, 1]):int(box[0, 3])] = (200, 40, 40)
        examples.append(create_example_from_arrays(
            image, box, np.array([1]), {1: "object"}, box_format="yxyx", image_format="png"))
    record = folder / "train.record"
    write_tfrecord(examples, record)
    label_map = folder / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'object' }\n")
    return record, label_map


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("sample_config_inputs"))


def with_paths(text, record, label_map):
    """The config text with its file paths replaced, nothing else."""
    text = re.sub(r'(\binput_path\s*:\s*)("[^"]*"|\S+)', rf'\g<1>"{record}"', text)
    text = re.sub(r'(\blabel_map_path\s*:\s*)("[^"]*"|\S+)', rf'\g<1>"{label_map}"', text)
    return re.sub(r'(\bfine_tune_checkpoint\s*:\s*)("[^"]*"|\S+)', r'\g<1>""', text)


def _pipeline(name, inputs, tmp_path):
    path = tmp_path / name
    path.write_text(with_paths((CONFIGS / name).read_text(), *inputs))
    return load_pipeline(path)


def _first(batch):
    return tf.nest.map_structure(lambda tensor: tensor[:1], batch)


def train_step_and_predict(pipeline):
    """One training step on the first image of the config's first batch, then a prediction
    of one image; returns `(losses, detections)`."""
    model = pipeline.model
    model.compile(optimizer=pipeline.optimizer)
    x, y = _first(next(iter(train_dataset(pipeline, seed=1))))
    history = model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    losses = {key: value[-1] for key, value in history.history.items()}
    return losses, model.predict_on_batch(np.zeros((1, 120, 100, 3), "uint8"))


def test_the_configs_kdet_has_are_here():
    # 35 of the 115: every SSD and Faster R-CNN config with a feature extractor kdet has.
    assert len(SAMPLE_CONFIGS) >= 35
    assert TRAINED <= set(SAMPLE_CONFIGS)


@pytest.mark.parametrize("name", SAMPLE_CONFIGS)
def test_sample_config_loads(name, inputs, tmp_path):
    pipeline = _pipeline(name, inputs, tmp_path)
    assert isinstance(pipeline.model, (kdet.SSD, kdet.FasterRCNN))
    assert pipeline.optimizer is not None and pipeline.train.batch_size >= 1


@pytest.mark.parametrize("name", sorted(INPUT_KINDS.values()))
def test_sample_config_reads_its_inputs(name, inputs, tmp_path):
    pipeline = _pipeline(name, inputs, tmp_path)
    images, y = next(iter(train_dataset(pipeline, seed=1)))
    batch_size = pipeline.train.batch_size
    images = images["resized_images"] if isinstance(images, dict) else images
    assert images.shape[0] == batch_size
    assert y["labels"].shape[0] == batch_size
    # Every image keeps its box (class 1) or loses it to a crop; no other label appears.
    labels = y["labels"].numpy()
    assert set(np.unique(labels)) <= {-1, 1}
    if pipeline.eval_inputs:
        eval_images, _ = next(iter(eval_dataset(pipeline)))
        eval_images = (
            eval_images["resized_images"] if isinstance(eval_images, dict) else eval_images
        )
        assert eval_images.shape[0] >= 1


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(TRAINED))
def test_sample_config_trains_a_step_and_predicts(name, inputs, tmp_path):
    losses, detections = train_step_and_predict(_pipeline(name, inputs, tmp_path))
    assert losses and all(np.isfinite(value) for value in losses.values()), losses
    assert detections["boxes"].shape[-1] == 4
    assert int(detections["num_detections"][0]) <= detections["boxes"].shape[1]
