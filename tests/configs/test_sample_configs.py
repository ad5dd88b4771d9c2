"""The TF OD API's own sample configs run in kdet unchanged except for their file paths.

Every config in `tests/data/tfod_configs/` (copies of `samples/configs/*.config` and
`configs/tf2/*.config` of tensorflow/models; source, commit and licence in its README) whose
meta-architecture and feature extractor kdet has (`check_architecture` passes; 93 configs:
every SSD and Faster R-CNN sample config, Mask R-CNN, R-FCN and Context R-CNN ones, and
CenterNet ResNet-50 FPN with keypoints) must:
- load (every config, here): `load_pipeline` builds its model, optimizer, learning rate
  schedule, augmentation and settings from the text as written;
- read its inputs (one config per kind of input pipeline, here: augmentation steps and
  resizer): `train_dataset` gives a batch of `train_config.batch_size` images through the
  config's augmentation and the model's resizer, `eval_dataset` a batch of `eval_config`;
- train a few steps and predict: 2 steps with the config's optimizer on the first image of
  its own first batch (a step at the configs' batch sizes, up to 128 images of up to 1024²,
  would take minutes on a CPU), each loss finite, most trainable variables changed by the
  last step, then a prediction.

What trains where:
- In CI (here, `TRAINED`, 12 configs): each config's `code_path` (the classes its model and
  optimizer are made of, where each sits, its dtype policy, augmentation steps, quantization-
  aware training and variable selection) is checked to be covered by the code paths of the
  `TRAINED` configs, so a config that brings a new class, augmentation step, dtype policy or
  quantization cannot slip in untrained: `test_sample_config_loads` fails and names what
  is missing. Coverage is per feature, not per combination. Two exceptions, each checked: a
  feature extractor listed in `EXTRACTORS_TRAINED_IN_THEIR_TESTS` is trained by its own test
  file (`tests/extractor_battery.py`: a tiny detector around it fits shapes; a config of it
  then predicts here, `test_sample_config_predicts`), and augmentation steps count as covered
  when `test_sample_config_reads_its_inputs` runs them. Training every config does not fit
  the CI budget: 2 eager steps and a prediction of each of the first 35 at 128 px (no
  tracing) plus the first 8 of these compiled took 681 s, those 8 compiled alone 455 s (same
  machine and load; benchmarks/README.md). They train with their image resizer scaled to 128 pixels
  (`with_small_images`; `code_path` has no sizes, and the test checks it is unchanged): the
  full-size steps cost 15 s to minutes each on a CPU.
- In `benchmarks/sample_configs_status.py FOLDER --train`: every config, full size, 2 steps
  and a prediction (table and timings in benchmarks/README.md).

Only paths change: `input_path` and `label_map_path` point at a tiny record of real-looking
images (one class, id 1: every config has `num_classes` ≥ 1), `fine_tune_checkpoint` is
emptied.
"""

import ast
import gc
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.configs import ConfigError
from kdet.configs import eval_dataset
from kdet.configs import load_pipeline
from kdet.configs import train_dataset
from kdet.configs.datasets import input_size
from kdet.configs.model_builder import check_architecture
from kdet.configs.text_format import parse
from kdet.configs.text_format import parse_file
from kdet.data import create_tf_sequence_example
from kdet.data import encode_image
from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord
from kdet.feature_extractors import available_feature_extractors
from kdet.feature_extractors import get_feature_extractor_class
from kdet.training.quantization import QuantizationAwareTraining
from kdet.zoo import tf_zoo

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "data" / "tfod_configs"
# The configs trained in CI: between them, every feature of every config's `code_path`
# (the fewest configs that do: 12; `test_sample_config_loads` checks it).
TRAINED = {
    # ResNet-101, fixed-shape resizer, mixed_bfloat16, cosine schedule, colour / scale crops.
    "faster_rcnn_resnet101_v1_1024x1024_coco17_tpu-8.config",
    # ResNet-50, keep-aspect-ratio resizer, float32, manual-step schedule.
    "faster_rcnn_resnet50_coco.config",
    # ResNet-50 FPN: multiscale anchors, multi-level RoIAlign.
    "faster_rcnn_resnet50_v1_fpn_640x640_coco17_tpu-8.config",
    # MobileNet v1 FPN: weight-shared predictor, focal loss, random_crop_image.
    "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8.config",
    # MobileNet v2 FPN-lite, quantization-aware training.
    ("ssd_mobilenet_v2_fpnlite_quantized_shared_box_predictor_256x256_depthmultiplier_75_coco14_"
     "sync.config"),
    # MobileNet v2: convolutional predictor, hard example miner, RMSprop, ssd_random_crop.
    "ssd_mobilenet_v2_coco.config",
    # The same with a keep-aspect-ratio resizer and ssd_random_crop_fixed_aspect_ratio.
    "ssd_mobilenet_v2_fullyconv_coco.config",
    # ResNet-50 FPN, mixed_bfloat16.
    "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config",
    # CenterNet ResNet-50 FPN with a keypoint task (17 keypoints), random_absolute_pad_image.
    "centernet_resnet50_v1_fpn_512x512_kpts_coco17_tpu-8.config",
    # Mask R-CNN (ResNet-50 atrous, PNG instance masks in the records).
    "mask_rcnn_resnet50_atrous_coco.config",
    # R-FCN (ResNet-101, rfcn_box_predictor: position-sensitive score maps, no per-RoI body).
    "rfcn_resnet101_coco.config",
    # Context R-CNN (attention into context features, read from tf.train.SequenceExamples).
    "context_rcnn_resnet101_snapshot_serengeti.config",
}


# Feature extractors trained in their own test file (tests/extractor_battery.py: a tiny SSD or
# Faster R-CNN around the extractor fits shapes images) rather than by a `TRAINED` config:
# training a config of each family here would cost minutes (EfficientDet, Inception-ResNet-v2
# and Inception v3 are among the heaviest bodies there are). A config whose extractor is here
# counts as trained when the rest of its code path is covered by `TRAINED`; it still loads and
# (one config per extractor type) predicts here, and trains full size in
# `benchmarks/sample_configs_status.py --train`. Class (as `code_class` names it) → test file.
_EXTRACTOR_TESTS = "tests/feature_extractors/"
EXTRACTORS_TRAINED_IN_THEIR_TESTS = {
    "SSDMobileNetV1FeatureExtractor":
        _EXTRACTOR_TESTS + "test_ssd_mobilenet_v1_feature_extractor.py",
    "SSDMobileNetV1PPNFeatureExtractor":
        _EXTRACTOR_TESTS + "test_ssd_mobilenet_v1_feature_extractor.py",
    "EmbeddedSSDMobileNetV1FeatureExtractor":
        _EXTRACTOR_TESTS + "test_ssd_mobilenet_v1_feature_extractor.py",
    "SSDMobileFeatureExtractor": _EXTRACTOR_TESTS + "test_ssd_mobile_feature_extractors.py",
    "SSDEfficientNetBiFPNFeatureExtractor":
        _EXTRACTOR_TESTS + "test_ssd_efficientnet_bifpn_feature_extractor.py",
    "SSDInceptionFeatureExtractor": _EXTRACTOR_TESTS + "test_inception_feature_extractors.py",
    "FasterRCNNInceptionV2FeatureExtractor":
        _EXTRACTOR_TESTS + "test_inception_feature_extractors.py",
    "FasterRCNNInceptionResNetV2FeatureExtractor":
        _EXTRACTOR_TESTS + "test_faster_rcnn_inception_resnet_v2_feature_extractor.py",
    "FasterRCNNNASFeatureExtractor":
        _EXTRACTOR_TESTS + "test_faster_rcnn_nas_feature_extractor.py",
    "SSDMobileNetV2MnasFPNFeatureExtractor":
        _EXTRACTOR_TESTS + "test_ssd_mobilenet_v2_mnasfpn_feature_extractor.py",
}


# Methods that load weights before training and take no part in it.
WEIGHT_LOADING_METHODS = {"restore_from_classification_checkpoint"}


def code_class(cls):
    """The class whose code `cls` runs: a class that defines no method of its own (e.g.
    `FasterRCNNResNet152FeatureExtractor`, `SSDEfficientNetB3BiFPNFeatureExtractor`: only
    other depths and widths), or only `WEIGHT_LOADING_METHODS` (`SSDInceptionV3FeatureExtractor`:
    Keras's ImageNet weights), trains with its base class's code, so it is covered wherever a
    sibling is."""
    while cls.__bases__ and not any(
        callable(value) or isinstance(value, (property, classmethod, staticmethod))
        for name, value in vars(cls).items()
        if not isinstance(value, type) and name not in WEIGHT_LOADING_METHODS
    ):
        cls = cls.__bases__[0]
    return cls


def _code_class_name(class_name):
    registered = keras.saving.get_registered_object(f"kdet>{class_name}")
    return class_name if registered is None else code_class(registered).__name__


def _in_kdet(path):
    """Whether kdet has the config's meta-architecture and feature extractor."""
    try:
        check_architecture(parse_file(path))
    except ConfigError:
        return False
    return True


SAMPLE_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.config") if _in_kdet(p))


def _input_kind(name):
    """What decides how a config's input pipeline runs: its augmentation steps, its resizer,
    its records' kind (`input_type`)."""
    root = parse_file(CONFIGS / name)
    train = root.first("train_config")
    steps = [option.value.fields[0].name for option in train.get("data_augmentation_options")]
    (meta_architecture,) = root.first("model").fields
    resizer = meta_architecture.value.first("image_resizer").fields[0].name
    return tuple(steps), resizer, root.first("train_input_reader").first("input_type")


# One config per kind of input pipeline (reading each config's inputs would cost minutes).
INPUT_KINDS = {}
for _name in SAMPLE_CONFIGS:
    INPUT_KINDS.setdefault(_input_kind(_name), _name)


# COCO's person class and keypoints (kdet.zoo's label map of them): the keypoint configs name
# class '/m/01g317' and read 17 keypoints.
LABEL_MAP = tf_zoo.COCO_KEYPOINT_LABEL_MAP
NUM_KEYPOINTS = 17


# Context R-CNN's configs read tf.train.SequenceExamples with context features of this length.
CONTEXT_FEATURE_LENGTH = 2057


def write_inputs(folder):
    """Writes a record of 4 images with one box each (class id 1, with 17 keypoints inside
    it and its PNG instance mask) into `folder`; returns `(record, label_map)`, the label map
    `LABEL_MAP` (class 1 is '/m/01g317' with COCO's keypoints). Box-only configs read the
    boxes (their input readers have no `num_keypoints`). Beside the record,
    `sequence_record(record)` holds 2 sequences of 2 such frames each with 3 context features
    (`input_type: TF_SEQUENCE_EXAMPLE`)."""
    random = np.random.default_rng(0)
    examples = []
    for index in range(4):
        height, width = 96 + 16 * index, 128 - 8 * index
        image = random.integers(0, 256, (height, width, 3), dtype=np.uint8)
        box = np.array([[0.2 * height, 0.25 * width, 0.8 * height, 0.75 * width]], "float32")
        image[int(box[0, 0]):int(box[0, 2]), int(box[0, 1]):int(box[0, 3])] = (200, 40, 40)
        keypoints = random.uniform(box[:, None, :2], box[:, None, 2:], (1, NUM_KEYPOINTS, 2))
        mask = np.zeros((1, height, width), np.uint8)
        mask[0, int(box[0, 0]):int(box[0, 2]), int(box[0, 1]):int(box[0, 3])] = 1
        examples.append(create_example_from_arrays(
            image, box, np.array([1]), {1: "/m/01g317"}, box_format="yxyx", image_format="png",
            keypoints=keypoints.astype("float32"), masks=mask, mask_type="png"))
    record = folder / "train.record"
    write_tfrecord(examples, record)
    write_tfrecord([_sequence(random, index) for index in range(2)], sequence_record(record))
    return record, LABEL_MAP


def sequence_record(record):
    """The record of sequence examples beside `record` (`write_inputs`)."""
    return record.with_name("train_sequences.record")


def _sequence(random, index):
    """A `tf.train.SequenceExample` of 2 frames (96 x 128, one box each, class '/m/01g317')
    sharing 3 context features."""
    box = np.array([[0.2, 0.25, 0.8, 0.75]], "float32")
    frames = [encode_image(random.integers(0, 256, (96, 128, 3), dtype=np.uint8), "png")
              for _ in range(2)]
    return create_tf_sequence_example(
        frames, 96, 128, [box, box], [["/m/01g317"]] * 2, [f"{index}_{f}" for f in range(2)],
        context_features=random.normal(size=(3, CONTEXT_FEATURE_LENGTH)).astype("float32"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("sample_config_inputs"))


def with_paths(text, record, label_map):
    """The config text with its file paths replaced, nothing else."""
    text = re.sub(r'(\binput_path\s*:\s*)("[^"]*"|\S+)', rf'\g<1>"{record}"', text)
    text = re.sub(r'(\blabel_map_path\s*:\s*)("[^"]*"|\S+)', rf'\g<1>"{label_map}"', text)
    text = re.sub(r'(\bkeypoint_label_map_path\s*:\s*)("[^"]*"|\S+)', rf'\g<1>"{label_map}"',
                  text)
    return re.sub(r'(\bfine_tune_checkpoint\s*:\s*)("[^"]*"|\S+)', r'\g<1>""', text)


# The image resizer fields that set input sizes (`image_resizer.proto`).
_SIZE_FIELDS = ("height", "width", "min_dimension", "max_dimension")
SMALL_SIDE = 128


def with_small_images(text, side=SMALL_SIDE):
    """The config text with its image resizer's sizes (`fixed_shape_resizer` height / width,
    `keep_aspect_ratio_resizer` min / max_dimension) scaled so that the smallest is `side`
    pixels, their ratios kept; nothing else changed."""
    root = parse(text)
    (meta_architecture,) = root.first("model").fields
    (resizer,) = meta_architecture.value.first("image_resizer").fields
    sizes = [field for field in resizer.value.fields if field.name in _SIZE_FIELDS]
    if not sizes:
        raise ValueError(f"image_resizer.{resizer.name} states no size ({_SIZE_FIELDS})")
    scale = side / min(field.value for field in sizes)
    lines = text.splitlines(keepends=True)
    # Last field first: a shorter number shifts the columns after it on its line.
    for field in sorted(sizes, key=lambda field: (field.line, field.column), reverse=True):
        line = lines[field.line - 1]
        head, tail = line[: field.column - 1], line[field.column - 1:]
        tail = re.sub(r"^(\w+\s*:?\s*)\d+", rf"\g<1>{round(field.value * scale)}", tail, count=1)
        lines[field.line - 1] = head + tail
    return "".join(lines)


# The box counts of two-stage configs (and of NMS), capped in the trained copies: a Mask R-CNN
# config's mask head runs on each of 300 detections (3 TFLOP at mask size 33 whatever the image
# size); fewer boxes run the same code.
_BOX_COUNT_FIELDS = ("first_stage_max_proposals", "second_stage_batch_size",
                     "max_detections_per_class", "max_total_detections",
                     # Context R-CNN: 2000 padded rows of 2057 floats per image (16 MB).
                     "max_num_context_features")
FEW_BOXES = 16


def with_few_boxes(text, count=FEW_BOXES):
    """The config text with each of `_BOX_COUNT_FIELDS` at most `count`; nothing else changed."""
    pattern = rf"(\b(?:{'|'.join(_BOX_COUNT_FIELDS)})\s*:\s*)(\d+)"
    return re.sub(pattern, lambda match: f"{match[1]}{min(int(match[2]), count)}", text)


def code_path(pipeline):
    """What decides which code trains a loaded config, as a set of strings:

    - `Owner/slot=Class` for each object in the serialized model and optimizer
      (`keras.saving.serialize_keras_object`), `Owner` being the class holding it: which
      classes run, and where;
    - `Model/dtype=policy`: the Keras dtype policy it trains under (e.g. `mixed_bfloat16`);
    - `augmentation=step` for each `data_augmentation_options` step;
    - `quantization=…` (quantization-aware training, `graph_rewriter`) and
      `variable_selection=…` (`freeze_variables` / `update_trainable_variables`).

    Not in it: numbers, booleans, empty slots, names, sizes. They pick values and branches
    inside a class, which its own unit tests cover; this test checks that each config's
    classes work together.
    """
    model, train = pipeline.model, pipeline.train
    quantization = QuantizationAwareTraining.of(model) is not None
    selection = bool(train.freeze_variables or train.update_trainable_variables)
    return (
        _classes(keras.saving.serialize_keras_object(model), "model")
        | _classes(keras.saving.serialize_keras_object(pipeline.optimizer), "optimizer")
        | {f"{type(model).__name__}/dtype={model.dtype_policy.name}",
           f"quantization={quantization}", f"variable_selection={selection}"}
        | {f"augmentation={name}" for name, _ in train.augmentation}
    )


def _classes(value, owner, slot=""):
    """`Owner/slot=Class` of each object in a serialized Keras config (see `code_path`);
    `slot` is the dotted key path inside the owner's config."""
    if isinstance(value, list):
        return set().union(*(_classes(item, owner, slot) for item in value))
    if not isinstance(value, dict):
        return set()
    if "class_name" in value and "config" in value:
        name = value["class_name"]
        if name.endswith("DTypePolicy"):  # the model's policy is a feature of its own
            return set()
        name = _code_class_name(name)
        if name in EXTRACTORS_TRAINED_IN_THEIR_TESTS:  # what it is made of is its test's
            return {f"{owner}/{slot}={name}"}
        return {f"{owner}/{slot}={name}"} | _classes(value["config"], name)
    return set().union(*(_classes(item, owner, f"{slot}.{key}" if slot else key)
                         for key, item in value.items()))


def _pipeline(name, inputs, folder, edit=lambda text: text):
    """`load_pipeline` of a copy of config `name` in `folder`, its paths replaced (and the
    text then `edit`ed)."""
    text = (CONFIGS / name).read_text()
    record, label_map = inputs
    if re.search(r"\binput_type\s*:\s*TF_SEQUENCE_EXAMPLE", text):
        record = sequence_record(record)
    path = folder / name
    path.write_text(edit(with_paths(text, record, label_map)))
    return load_pipeline(path)


@pytest.fixture(scope="module")
def pipelines(inputs, tmp_path_factory):
    """Config name → its loaded pipeline (paths replaced). Those several tests read
    (`TRAINED`, `INPUT_KINDS`) are loaded once; the others each time, so that the 93 models
    are not all held at once (EfficientDet-D7 or NASNet alone hold hundreds of MB)."""
    folder = tmp_path_factory.mktemp("sample_configs")
    kept = TRAINED | set(INPUT_KINDS.values())
    loaded = {}

    def pipeline(name):
        if name not in kept:
            return _pipeline(name, inputs, folder)
        if name not in loaded:
            loaded[name] = _pipeline(name, inputs, folder)
        return loaded[name]

    return pipeline


@pytest.fixture(scope="module")
def trained_code_path(pipelines):
    """The union of the `TRAINED` configs' code paths, and the augmentation steps of the
    `INPUT_KINDS` configs (`test_sample_config_reads_its_inputs` runs each config's steps
    through `train_dataset`, as training does)."""
    read = {
        feature for name in INPUT_KINDS.values() for feature in code_path(pipelines(name))
        if feature.startswith("augmentation=")
    }
    return set().union(read, *(code_path(pipelines(name)) for name in TRAINED))


def _first(batch):
    return tf.nest.map_structure(lambda tensor: tensor[:1], batch)


STEPS = 2


class _TrainableWeights(keras.callbacks.Callback):
    """Copies (numpy) of the model's trainable weights at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.copies = []

    def on_epoch_end(self, epoch, logs=None):
        self.copies.append([variable.numpy() for variable in self.model.trainable_weights])


def train_steps_and_predict(pipeline, steps=STEPS):
    """`steps` training steps (`fit` epochs of one batch) on the first image of the config's
    first batch, with the config's optimizer, then a prediction of one 120x100 image.

    Returns `(losses, changed, detections)`: `losses` maps each loss `fit` reports to its
    `steps` values; `changed` is the fraction of trainable variables the last step changed;
    `detections` the `predict_on_batch` outputs (`boxes` [1, N, 4], `num_detections` [1], ...).
    """
    model = pipeline.model
    model.compile(optimizer=pipeline.optimizer)
    x, y = _first(next(iter(train_dataset(pipeline, seed=1))))
    weights = _TrainableWeights()
    history = model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=steps, verbose=0,
                        callbacks=[weights])
    before, after = weights.copies[-2:]
    changed = float(np.mean([not np.array_equal(a, b) for a, b in zip(before, after)]))
    images = np.zeros((1, 120, 100, 3), "uint8")
    if isinstance(model, kdet.ContextRCNN):  # one context feature
        images = model.context_inputs(images, np.ones((1, 1, model.context_feature_length)))
    return history.history, changed, model.predict_on_batch(images)


def test_the_configs_kdet_has_are_here():
    # 93 of the 115: every SSD and Faster R-CNN sample config, Mask R-CNN, R-FCN and Context
    # R-CNN ones, one CenterNet config (the others, DeepMAC's included, build Hourglass-104).
    assert len(SAMPLE_CONFIGS) >= 93
    assert TRAINED <= set(SAMPLE_CONFIGS)


@pytest.mark.parametrize("name", SAMPLE_CONFIGS)
def test_sample_config_loads(name, pipelines, trained_code_path):
    pipeline = pipelines(name)
    assert isinstance(pipeline.model, (kdet.SSD, kdet.FasterRCNN, kdet.CenterNet))
    assert pipeline.optimizer is not None and pipeline.train.batch_size >= 1
    untrained = {
        feature for feature in code_path(pipeline) - trained_code_path
        if feature.rpartition("=")[2] not in EXTRACTORS_TRAINED_IN_THEIR_TESTS
    }
    del pipeline
    gc.collect()  # the model's reference cycles: free it before the next config's
    assert not untrained, (
        f"{name} trains code no TRAINED config runs in CI: {sorted(untrained)}; add to TRAINED "
        "a config that has it"
    )


def _extractor_code_class(name):
    """The `code_class` name of the feature extractor config `name` builds."""
    root = parse_file(CONFIGS / name)
    (meta_architecture,) = root.first("model").fields
    extractor_type = meta_architecture.value.first("feature_extractor").first("type")
    registered = available_feature_extractors()
    if extractor_type not in registered:
        extractor_type = extractor_type.removesuffix("_keras")
    return code_class(get_feature_extractor_class(extractor_type)).__name__


# One config per extractor trained in its own tests (the first by name: the smallest
# EfficientDet, Inception v2 before v3).
PREDICTED = {}
for _name in SAMPLE_CONFIGS:
    _extractor = _extractor_code_class(_name)
    if _extractor in EXTRACTORS_TRAINED_IN_THEIR_TESTS:
        PREDICTED.setdefault(_extractor, _name)
# Too slow to predict in CI, with why (they still load here; their extractors predict, tiny,
# in their own tests).
NOT_PREDICTED = {
    # The full-width NASNet second stage on the config's 500 proposals: 159 s at 128 px.
    "faster_rcnn_nas_coco.config": "FasterRCNNNASFeatureExtractor",
}
for _name, _extractor in NOT_PREDICTED.items():
    assert PREDICTED.pop(_extractor) == _name


# Configs predicting at their own size: the extractor takes no other.
KEPT_SIZE = {"embedded_ssd_mobilenet_v1_coco.config"}  # 256x256 only, as in the TF OD API


@pytest.mark.parametrize("name", sorted(PREDICTED.values()))
def test_sample_config_predicts(name, inputs, tmp_path):
    # The model of a config whose extractor trains in its own tests (images scaled to 128 px,
    # box counts capped) predicts.
    small = name not in KEPT_SIZE
    pipeline = _pipeline(name, inputs, tmp_path, edit=lambda text: with_few_boxes(
        with_small_images(text) if small else text))
    detections = pipeline.model.predict_on_batch(np.zeros((1, 120, 100, 3), "uint8"))
    assert detections["boxes"].shape[-1] == 4
    assert np.all(np.isfinite(detections["boxes"]))
    assert int(detections["num_detections"][0]) <= detections["boxes"].shape[1]


@pytest.mark.parametrize("name", sorted(EXTRACTORS_TRAINED_IN_THEIR_TESTS))
def test_extractors_trained_elsewhere_are_trained_by_the_battery(name):
    # A test function of the file named trains the class (or a class running its code)
    # through tests/extractor_battery.py.
    path = ROOT / EXTRACTORS_TRAINED_IN_THEIR_TESTS[name]
    functions = {
        node.name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)
    }
    trained = set()
    for function, names in functions.items():
        if not function.startswith("test_"):
            continue
        # With the names of the module's functions it calls (those building the extractor).
        while names != (wider := names.union(*(functions.get(n, ()) for n in names))):
            names = wider
        if names & {"assert_ssd_extractor_learns", "assert_faster_rcnn_extractor_learns"}:
            trained |= {_code_class_name(n) for n in names}
    assert name in trained, f"no test function of {path} trains {name} with the battery"


@pytest.mark.parametrize("name", sorted(INPUT_KINDS.values()))
def test_sample_config_reads_its_inputs(name, pipelines):
    pipeline = pipelines(name)
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
def test_sample_config_trains_and_predicts(name, inputs, pipelines, tmp_path):
    pipeline = _pipeline(name, inputs, tmp_path,
                         edit=lambda text: with_few_boxes(with_small_images(text)))
    # Smaller images and fewer boxes, the same code: the same classes in the same places.
    assert code_path(pipeline) == code_path(pipelines(name))
    assert max(input_size(pipeline.model)[0]) < max(input_size(pipelines(name).model)[0])
    losses, changed, detections = train_steps_and_predict(pipeline)
    assert losses and all(np.all(np.isfinite(values)) for values in losses.values()), losses
    assert all(len(values) == STEPS for values in losses.values()), losses
    assert changed > 0.5, changed
    assert detections["boxes"].shape[-1] == 4
    assert int(detections["num_detections"][0]) <= detections["boxes"].shape[1]
