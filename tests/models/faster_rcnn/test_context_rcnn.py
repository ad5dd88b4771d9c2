"""Context R-CNN: context features in records, the attention block (TF OD API parity), the
model's training and prediction, and its configs."""

import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_two_stage_extractor  # noqa: F401 (registers config_test_tiny_two_stage)

from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs import train_dataset
from kdet.configs.model_builder import build_model_from_text
from kdet.data import read_tfrecords
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import create_tf_sequence_example
from kdet.data.tf_example import encode_image
from kdet.export import FrozenDetector
from kdet.export import export_saved_model
from kdet.layers import CropAndResizeRoIPooler
from kdet.layers import FixedShapeResizer
from kdet.models.faster_rcnn import ContextAttention
from kdet.models.faster_rcnn import ContextRCNN
from kdet.models.faster_rcnn import RoIHeads
from kdet.training import FusedAdam

ROOT = pathlib.Path(__file__).resolve().parents[3]
# The TF OD API's outputs (tools/tfod_reference/make_context_rcnn_references.py).
TFOD_REFERENCE = ROOT / "tests" / "data" / "tfod_reference" / "context_rcnn_attention.npz"
SAMPLE_CONFIG = ROOT / "tests" / "data" / "tfod_configs" / (
    "context_rcnn_resnet101_snapshot_serengeti.config"
)
LENGTH = 5


def _image(seed, height=40, width=60):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write(path, serialized):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in serialized:
            writer.write(record)
    return path


def test_context_features_round_trip_through_records(tmp_path):
    counts = (3, 0, 7)  # 7 is clipped to 5 rows; its valid size stays 7, as in the TF OD API
    features = [np.random.default_rng(n).normal(size=(n, LENGTH)).astype("float32")
                for n in counts]
    record = _write(tmp_path / "context.record", [
        create_tf_example(encode_image(_image(i)), 40, 60, [[0.1, 0.1, 0.5, 0.5]], [1], ["a"],
                          filename=f"{i}.jpg", context_features=context).SerializeToString()
        for i, context in enumerate(features)
    ])
    x, y = next(iter(read_tfrecords(
        record, batch_size=3, image_size=32, shuffle=False, load_context_features=True,
        max_num_context_features=5, context_feature_length=LENGTH,
    )))
    assert sorted(x) == ["context_features", "resized_images", "true_image_shape",
                         "valid_context_size"]
    np.testing.assert_array_equal(x["valid_context_size"], counts)
    assert x["context_features"].shape == (3, 5, LENGTH)
    for row, context in enumerate(features):
        kept = context[:5]
        np.testing.assert_array_equal(x["context_features"][row, : len(kept)], kept)
        np.testing.assert_array_equal(x["context_features"][row, len(kept):], 0.0)
    np.testing.assert_array_equal(x["true_image_shape"], [[32, 32]] * 3)
    np.testing.assert_array_equal(y["labels"][:, 0], [1, 1, 1])


def test_records_without_the_right_context_features_are_named(tmp_path):
    cases = {"no_length.jpg": (None, r"no_length\.jpg.*has no image/context_feature_length"),
             "length_4.jpg": (np.zeros((2, 4)),
                              r"length_4\.jpg.*has image/context_feature_length.*4.*expected 5")}
    for filename, (context, message) in cases.items():
        record = _write(tmp_path / f"{filename}.record", [create_tf_example(
            encode_image(_image(0)), 40, 60, [], [], [], filename=filename,
            context_features=context,
        ).SerializeToString()])
        dataset = read_tfrecords(record, image_size=32, load_context_features=True,
                                 max_num_context_features=4, context_feature_length=LENGTH)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            next(iter(dataset))
    with pytest.raises(ValueError, match="load_context_features=True needs "
                                         "max_num_context_features"):
        read_tfrecords(record, image_size=32, load_context_features=True)


def _sequence_record(path, num_sequences=2, length=LENGTH, image_size=(48, 64)):
    """Sequences of 3 frames, the middle one not annotated; sequence s has s + 2 context
    features of value s + 1."""
    records = []
    for s in range(num_sequences):
        images = [encode_image(_image(10 * s + f, *image_size), "png") for f in range(3)]
        boxes = [[[0.2, 0.25, 0.8, 0.75]], [], [[0.1, 0.1, 0.6, 0.5], [0.2, 0.2, 0.4, 0.4]]]
        records.append(create_tf_sequence_example(
            images, *image_size, boxes, [["zebra"], [], ["zebra", "unknown"]],
            [f"{s}_{f}" for f in range(3)], is_annotated=[1, 0, 1],
            context_features=np.full((s + 2, length), s + 1.0, np.float32),
        ).SerializeToString())
    return _write(path, records)


def test_sequence_examples_give_their_annotated_frames_with_their_context(tmp_path):
    record = _sequence_record(tmp_path / "sequences.record")
    x, y, metadata = next(iter(read_tfrecords(
        record, batch_size=4, image_size=32, shuffle=False, label_map={1: "zebra"},
        input_type="tf_sequence_example", load_context_features=True,
        max_num_context_features=4, context_feature_length=LENGTH, return_metadata=True,
    )))
    np.testing.assert_array_equal(metadata["source_id"], [b"0_0", b"0_2", b"1_0", b"1_2"])
    np.testing.assert_array_equal(x["valid_context_size"], [2, 2, 3, 3])
    np.testing.assert_array_equal(x["context_features"][:, :, 0],
                                  [[1, 1, 0, 0], [1, 1, 0, 0], [2, 2, 2, 0], [2, 2, 2, 0]])
    # The unknown class name is dropped, as the TF OD API's label map lookup makes it -1.
    np.testing.assert_array_equal(y["labels"][:, :2], [[1, -1]] * 4)
    np.testing.assert_allclose(y["boxes"][1, 0], [3.2, 3.2, 19.2, 16.0], atol=1e-4)
    # Training reads one random annotated frame of each sequence per epoch (the TF OD API's
    # train_input), each with its sequence's context.
    _, _, metadata = next(iter(read_tfrecords(
        record, batch_size=20, image_size=32, shuffle=False, num_epochs=10, seed=0,
        label_map={1: "zebra"}, input_type="tf_sequence_example", one_frame_per_sequence=True,
        return_metadata=True,
    )))
    ids = [source_id.decode() for source_id in metadata["source_id"].numpy()]
    assert [source_id[0] for source_id in ids] == ["0", "1"] * 10
    assert set(ids) == {"0_0", "0_2", "1_0", "1_2"}


def _assign(attention, reference):
    names = {"query": attention.query_projection, "key": attention.key_projection,
             "value": attention.value_projection, "feature": attention.output_projection}
    for name, projection in names.items():
        projection.dense.kernel.assign(reference[f"{name}/kernel"])
        projection.dense.bias.assign(reference[f"{name}/bias"])
        for variable in ("gamma", "beta", "moving_mean", "moving_variance"):
            getattr(projection.batch_norm, variable).assign(reference[f"{name}/{variable}"])


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_attention_matches_the_tf_od_api(mode):
    reference = np.load(TFOD_REFERENCE)
    batch, proposals = reference["num_proposals"].shape[0], reference["outputs/training"].shape[1]
    boxes = reference["box_features"].reshape(batch, proposals, 2, 2, -1)
    arguments = (boxes, reference["context_features"], reference["valid_context_size"],
                 tf.sequence_mask(reference["num_proposals"], proposals))
    attention = ContextAttention(int(reference["bottleneck_dimension"]),
                                 float(reference["attention_temperature"]))
    attention(*arguments)
    _assign(attention, reference)
    outputs = attention(*arguments, training=mode == "training")
    np.testing.assert_allclose(outputs, reference[f"outputs/{mode}"][:, :, 0, 0], atol=1e-5)


def test_attention_ignores_padding_context_rows():
    # Seeded weights: with some draws every output of the first image is 0 after the ReLUs, and
    # no change to its context could show (seen once in a full run).
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(3)
    boxes = rng.normal(size=(2, 3, 4)).astype("float32")
    context = rng.normal(size=(2, 6, LENGTH)).astype("float32")
    attention = ContextAttention(4, 0.5)
    sizes = np.array([2, 6], "int32")
    outputs = attention(boxes, context, sizes)
    changed_padding = context.copy()
    changed_padding[0, 2:] = 100.0
    np.testing.assert_allclose(attention(boxes, changed_padding, sizes), outputs, atol=1e-6)
    changed_valid = context.copy()
    changed_valid[0, :2] += 1.0
    assert np.abs(attention(boxes, changed_valid, sizes)[0] - outputs[0]).max() > 1e-3


def _tiny_model(attention_position="post_box_classifier", **kwargs):
    return ContextRCNN(
        2, "config_test_tiny_two_stage", image_resizer=FixedShapeResizer(64, 64),
        roi_heads=RoIHeads(2, CropAndResizeRoIPooler(6), batch_size=8),
        max_num_context_features=6, context_feature_length=LENGTH,
        attention_bottleneck_dimension=4, attention_temperature=0.1,
        attention_position=attention_position, **kwargs,
    )


def test_context_rcnn_trains_predicts_and_reads_its_context():
    keras.utils.set_random_seed(1)
    model = _tiny_model()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    images[0, 5:40, 5:40] = (220, 30, 30)
    images[1, 10:50, 20:60] = (30, 30, 220)
    context = rng.normal(size=(2, 4, LENGTH)).astype("float32")
    x = model.context_inputs(images, context, [4, 2])
    y = {"boxes": np.array([[[5, 5, 40, 40]], [[10, 20, 50, 60]]], "float32"),
         "labels": np.array([[1], [2]], "int32")}
    model.compile(optimizer=FusedAdam(3e-3))
    losses = model.fit(x, y, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    detections = model.predict_on_batch(x)
    assert detections["boxes"].shape == (2, 100, 4)
    assert np.all(np.isfinite(detections["confidences"]))
    # The second stage reads the valid context rows, not the padding.
    raw = model(x, training=False)["class_logits"]
    other = model(model.context_inputs(images, context + 1.0, [4, 2]), training=False)
    assert np.abs(other["class_logits"] - raw).max() > 1e-4
    padded = model.context_inputs(images, context, [4, 2])  # image 1: rows 2..5 padding
    padded["context_features"] = tf.tensor_scatter_nd_update(
        padded["context_features"], [[1, 3]], tf.fill([1, LENGTH], 50.0))
    np.testing.assert_allclose(model(padded, training=False)["class_logits"][1], raw[1],
                               atol=1e-5)
    with pytest.raises(ValueError, match="ContextRCNN takes a dict with 'resized_images'"):
        model(images)
    # More rows than max_num_context_features (6) are clipped, as records are read.
    many = model.context_inputs(images, rng.normal(size=(2, 9, LENGTH)).astype("float32"))
    assert many["context_features"].shape == (2, 6, LENGTH)
    np.testing.assert_array_equal(many["valid_context_size"], [9, 9])
    config = model.get_config()
    assert ContextRCNN.from_config(config).get_config() == config


def test_post_rpn_attention_adds_to_the_crops(tmp_path):
    model = _tiny_model("post_rpn")
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    context = rng.normal(size=(1, 3, LENGTH)).astype("float32")
    logits = model(model.context_inputs(images, context), training=False)["class_logits"]
    other = model(model.context_inputs(images, -context), training=False)["class_logits"]
    assert np.abs(other - logits).max() > 1e-5
    # Queries are the crops' depth (8 channels of the tiny extractor), not the box features'.
    assert model.context_attention.query_projection.dense.kernel.shape == (8, 4)
    # The image-only exports refuse it up front, saying why.
    for export in (lambda: export_saved_model(model, tmp_path / "saved_model"),
                   lambda: FrozenDetector(model)):
        with pytest.raises(ValueError, match="is a Context R-CNN: it detects from images and"):
            export()
    assert not (tmp_path / "saved_model").exists()


def test_tf2_only_attention_arguments_are_refused():
    for argument, value in (("use_self_attention", True), ("num_attention_heads", 2),
                            ("use_long_term_attention", False)):
        with pytest.raises(ValueError, match=f"{argument}={value!r} is not supported"):
            _tiny_model(**{argument: value})
    with pytest.raises(ValueError, match="ATTENTION_DEFAULT adds no attention"):
        _tiny_model("attention_default")


def _shrunk_sample(text, record=None, label_map=None):
    """The Serengeti sample config with the tiny extractor, 64 px images, few boxes and
    context features (and the given paths): the rest as it is."""
    text = text.replace('type: "faster_rcnn_resnet101"', 'type: "config_test_tiny_two_stage"')
    text = text.replace("batch_norm_trainable: true", "")
    text = re.sub(r"(height|width): 640", r"\g<1>: 64", text)
    text = re.sub(r"(first_stage_max_proposals|second_stage_batch_size|max_total_detections|"
                  r"max_detections_per_class): \d+", r"\g<1>: 8", text)
    text = text.replace("max_num_context_features: 2000", "max_num_context_features: 4")
    text = text.replace("context_feature_length: 2057", f"context_feature_length: {LENGTH}")
    if record is not None:
        text = re.sub(r'input_path: "[^"]*"', f'input_path: "{record}"', text)
        text = re.sub(r'label_map_path: "[^"]*"', f'label_map_path: "{label_map}"', text)
        text = re.sub(r'fine_tune_checkpoint: "[^"]*"', 'fine_tune_checkpoint: ""', text)
    return text


def test_sample_config_builds_and_reads_its_sequences(tmp_path):
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'zebra' }\n")
    record = _sequence_record(tmp_path / "sequences.record")
    path = tmp_path / SAMPLE_CONFIG.name
    path.write_text(_shrunk_sample(SAMPLE_CONFIG.read_text(), record, label_map))
    pipeline = load_pipeline(path)
    model = pipeline.model
    assert type(model) is ContextRCNN
    assert (model.max_num_context_features, model.context_feature_length) == (4, LENGTH)
    assert (model.attention_bottleneck_dimension, model.attention_temperature,
            model.attention_position) == (2048, pytest.approx(0.01), "post_box_classifier")
    # The training input: one annotated frame of each sequence (of 4 of 6), repeated, with its
    # sequence's context.
    x, y = next(iter(train_dataset(pipeline, seed=1)))
    assert x["context_features"].shape == (8, 4, LENGTH)
    assert x["resized_images"].shape == (8, 64, 64, 3)
    assert set(np.asarray(x["valid_context_size"])) == {2, 3}
    assert set(np.asarray(y["labels"][:, 0])) == {1}
    # An input reader of a Context R-CNN that does not load the context is named.
    path.write_text(path.read_text().replace("load_context_features: true", ""))
    with pytest.raises(ValueError, match="train_input_reader: the model is a Context R-CNN"):
        train_dataset(load_pipeline(path))


@pytest.mark.parametrize("field, message", [
    ("use_self_attention: true", "use_self_attention.*TF2 Context R-CNN has only this value"),
    ("attention_position: ATTENTION_DEFAULT", "adds no attention at all"),
])
def test_sample_config_refuses_what_tf2_context_rcnn_lacks(field, message):
    text = SAMPLE_CONFIG.read_text()
    model = _shrunk_sample(text[text.index("model {"):text.index("train_config")])
    with pytest.raises(ConfigError, match=message):
        build_model_from_text(model.replace("context_config {", f"context_config {{ {field}"))
