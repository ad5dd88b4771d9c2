"""TF OD API TF1 name-based checkpoints (`model.ckpt`, TF-Slim names) load into kdet models that
then compute what the TF OD API's TF1 code computes; slim classification checkpoints start
their backbones.

`tests/data/tfod_reference/tf1_<name>/` holds a small random-initialized model made by
`tools/tfod_reference/make_tf1_references.py` with the TF OD API's own TF1 (slim, graph mode)
code: `pipeline.config`, the name-based `model.ckpt` (`tf.compat.v1.train.Saver`, as TF1
training and the TF1 zoo write it; `global_step` included) and `outputs.npz`, its
`preprocess` / `predict` / `postprocess` tensors on `photo.png`. kdet builds the model from the
config unchanged, restores the checkpoint (every variable must be used) and must match the raw
outputs within 1e-3 and the detections as sets.

The other checkpoints here are written by the tests with TensorFlow's `SaveV2` op, the op
`tf.compat.v1.train.Saver` writes name-based checkpoints with: values of the reference
checkpoint under their slim names, plus what real TF1 checkpoints also hold (optimizer slots,
moving averages, a classifier's logits).
"""

import numpy as np
import pytest
import tensorflow as tf
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import assert_ssd_outputs_match
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import load_tfod_model
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline

SSD = "tf1_ssd_mobilenet_v2"
@pytest.fixture(scope="module")
def ssd():
    """`(model, TFODRestore)` of the TF1 SSD reference, restored "full"."""
    folder = REFERENCES / SSD
    return load_tfod_model(folder / "pipeline.config", folder / "model.ckpt")


@pytest.fixture(scope="module")
def ssd_values():
    """`{slim name: array}` of every entry of the TF1 SSD reference checkpoint."""
    reader = tf.train.load_checkpoint(str(REFERENCES / SSD / "model.ckpt"))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}


def write_name_based_checkpoint(prefix, values):
    """Writes `{name: array}` as a TF1 name-based checkpoint at `prefix`."""
    names = sorted(values)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(values[name]) for name in names],
    )
    return prefix


def _weight(model, path):
    return next(weight for weight in model.weights if weight.path == path).numpy()


def _layer_and_weight(path):
    """`block_3_expand/kernel` of the weight path `…/block_3_expand/kernel`."""
    return "/".join(path.split("/")[-2:])


def test_every_checkpoint_variable_is_restored(ssd):
    model, restore = ssd
    checkpoint = TFODCheckpoint.open(REFERENCES / SSD)
    assert checkpoint.version == "V1"
    assert checkpoint.ignored == ("global_step",)
    assert sorted(key for _, key in restore.restored) == sorted(checkpoint.shapes)
    assert len(restore.restored) == len(model.weights) == 344
    assert not restore.not_restored and not restore.unused
    assert restore.ignored == ["global_step"]
    assert str(restore) == (
        "restored 344 weights of model.ckpt (TF1, full); 1 checkpoint entry not read "
        "(step, optimizer slots, moving averages)"
    )


def test_slim_names_pair_the_layers_they_name(ssd):
    restored = dict(ssd[1].restored)
    prefix = "FeatureExtractor/MobilenetV2/"
    expected = {
        "Conv1/kernel": "Conv/weights",
        "bn_Conv1/moving_variance": "Conv/BatchNorm/moving_variance",
        "expanded_conv_depthwise/kernel": "expanded_conv/depthwise/depthwise_weights",
        "block_13_expand_BN/gamma": "expanded_conv_13/expand/BatchNorm/gamma",
        "Conv_1_bn/beta": "Conv_1/BatchNorm/beta",
        "layer_19_2_Conv2d_2_3x3_s2_128_depthwise_conv/kernel": (
            "layer_19_2_Conv2d_2_3x3_s2_128_depthwise/depthwise_weights"
        ),
    }
    for kdet_path, slim_name in expected.items():
        [key] = [key for path, key in restored.items() if _layer_and_weight(path) == kdet_path]
        assert key == prefix + slim_name
    [key] = [
        key for path, key in restored.items()
        if _layer_and_weight(path) == "BoxPredictor_5_ClassPredictor/bias"
    ]
    assert key == "BoxPredictor_5/ClassPredictor/biases"


def test_raw_outputs_match_the_tf_od_api(ssd):
    model, _ = ssd
    expected = reference(SSD)
    assert_ssd_outputs_match(model, expected, anchor_tolerance=RAW_TOLERANCE)


def test_detections_match_the_tf_od_api_as_sets(ssd):
    model, _ = ssd
    image = photo()
    assert_same_detections(model.predict_on_batch(image[None]), reference(SSD), image.shape)


def test_the_anchors_and_the_preprocessed_image_match_the_tf_od_api(ssd):
    # The TF1 resize (no half-pixel centres) and the anchors.
    model, _ = ssd
    expected = reference(SSD)
    outputs = model(photo()[None], training=False)
    np.testing.assert_allclose(outputs["anchors"], expected["predict/anchors"], atol=1e-6)
    resized, _ = model.resize_inputs(photo()[None])
    np.testing.assert_allclose(
        model.feature_extractor.preprocess(resized),
        expected["predict/preprocessed_inputs"],
        atol=1e-5,
    )


def test_a_training_checkpoint_ignores_slots_and_reads_moving_averages_on_request(
    tmp_path, ssd_values
):
    # A TF1 training checkpoint (RMSProp, as the sample config trains) with moving averages
    # of the trainable variables (`use_moving_averages`): kernels and biases, not batch-norm
    # statistics.
    values = dict(ssd_values)
    trainable = [key for key in ssd_values if key != "global_step" and "moving_" not in key]
    for key in trainable:
        values[f"{key}/ExponentialMovingAverage"] = ssd_values[key] + 1.0
        values[f"{key}/RMSProp"] = np.ones_like(ssd_values[key])
        values[f"{key}/RMSProp_1"] = np.zeros_like(ssd_values[key])
    prefix = write_name_based_checkpoint(tmp_path / "model.ckpt-2000", values)
    config = REFERENCES / SSD / "pipeline.config"
    kernel = "FeatureExtractor/MobilenetV2/Conv/weights"
    mean = "FeatureExtractor/MobilenetV2/Conv/BatchNorm/moving_mean"

    model, restore = load_tfod_model(config, prefix)
    assert str(restore) == (
        f"restored 344 weights of model.ckpt-2000 (TF1, full); {1 + 3 * len(trainable)} "
        "checkpoint entries not read (step, optimizer slots, moving averages)"
    )
    assert len(restore.ignored) == 1 + 3 * len(trainable)
    assert f"{kernel}/RMSProp" in restore.ignored
    conv, batch_norm = (
        path for path, key in restore.restored if key in (kernel, mean)
    )
    np.testing.assert_array_equal(_weight(model, conv), ssd_values[kernel])

    averaged, restore = load_tfod_model(config, prefix, use_moving_averages=True)
    read = dict(restore.restored)
    assert read[conv] == f"{kernel}/ExponentialMovingAverage"
    assert read[batch_norm] == mean
    np.testing.assert_array_equal(_weight(averaged, conv), ssd_values[kernel] + 1.0)
    np.testing.assert_array_equal(_weight(averaged, batch_norm), ssd_values[mean])
    assert f"{kernel}/ExponentialMovingAverage" not in restore.ignored
    assert len(restore.ignored) == 1 + 2 * len(trainable)


def test_moving_averages_of_a_checkpoint_without_them_are_refused(ssd):
    model, _ = ssd
    with pytest.raises(CheckpointError, match="no TF1 exponential moving averages"):
        restore_tfod_checkpoint(model, REFERENCES / SSD, use_moving_averages=True)


def test_a_detection_restore_leaves_the_box_predictor_and_allows_other_classes(
    tmp_path, ssd_values
):
    folder = REFERENCES / SSD
    text = (folder / "pipeline.config").read_text().replace("num_classes: 3", "num_classes: 5")
    (tmp_path / "pipeline.config").write_text(text)
    model = load_pipeline(tmp_path / "pipeline.config").model
    restore = restore_tfod_checkpoint(model, folder, "detection")
    assert {key.split("/")[0] for _, key in restore.restored} == {"FeatureExtractor"}
    assert all("box_predictor" not in path for path, _ in restore.restored)
    assert len(restore.unused) == 24 and all(k.startswith("BoxPredictor_") for k in restore.unused)
    for path, key in restore.restored:
        np.testing.assert_array_equal(_weight(model, path), ssd_values[key])
    # "full" into 5 classes fails before assigning anything, naming the class heads.
    model = load_pipeline(tmp_path / "pipeline.config").model
    model.build((None, None, None, 3))
    before = [weight.numpy().copy() for weight in model.weights]
    with pytest.raises(CheckpointError, match="ClassPredictor.*shape"):
        restore_tfod_checkpoint(model, folder, "full")
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_a_missing_variable_is_named(tmp_path, ssd_values):
    values = dict(ssd_values)
    del values["FeatureExtractor/MobilenetV2/expanded_conv_3/project/weights"]
    prefix = write_name_based_checkpoint(tmp_path / "model.ckpt", values)
    with pytest.raises(CheckpointError, match="no FeatureExtractor/MobilenetV2/expanded_conv_3/"
                                              "project/weights"):
        load_tfod_model(REFERENCES / SSD / "pipeline.config", prefix)


def test_a_detection_variable_kdet_lacks_is_refused(tmp_path, ssd_values):
    values = dict(ssd_values)
    values["FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_6/weights"] = np.zeros([1, 1, 8, 8])
    prefix = write_name_based_checkpoint(tmp_path / "model.ckpt", values)
    model = load_pipeline(REFERENCES / SSD / "pipeline.config").model
    for checkpoint_type in ("full", "detection"):
        with pytest.raises(CheckpointError, match="layer_19_2_Conv2d_6/weights has no kdet"):
            restore_tfod_checkpoint(model, prefix, checkpoint_type)


def classification_checkpoint(tmp_path, ssd_values):
    """A slim classification checkpoint of the reference's MobileNetV2 (`MobilenetV2/…`, as
    `mobilenet_v2_1.0_224.ckpt` names it): the reference's body values without the detection
    scope, the classifier's logits and the step."""
    body = "FeatureExtractor/MobilenetV2/"
    values = {
        key[len("FeatureExtractor/"):]: value
        for key, value in ssd_values.items()
        if key.startswith(body) and "/layer_19_" not in key
    }
    values["MobilenetV2/Logits/Conv2d_1c_1x1/weights"] = np.zeros([1, 1, 320, 1001], np.float32)
    values["MobilenetV2/Logits/Conv2d_1c_1x1/biases"] = np.zeros([1001], np.float32)
    values["global_step"] = np.int64(10)
    return write_name_based_checkpoint(tmp_path / "mobilenet_v2.ckpt", values)


def test_a_slim_classification_checkpoint_starts_the_backbone(tmp_path, ssd_values):
    prefix = classification_checkpoint(tmp_path, ssd_values)
    model = load_pipeline(REFERENCES / SSD / "pipeline.config").model
    restore = restore_tfod_checkpoint(model, prefix, "classification")
    keys = {key for _, key in restore.restored}
    assert len(keys) == 260 and all(key.startswith("MobilenetV2/") for key in keys)
    assert restore.unused == [
        "MobilenetV2/Logits/Conv2d_1c_1x1/biases", "MobilenetV2/Logits/Conv2d_1c_1x1/weights"
    ]
    assert restore.ignored == ["global_step"]
    body = {id(weight) for weight in model.feature_extractor.body.weights}
    assert {path for path, _ in restore.restored} == {
        weight.path for weight in model.weights if id(weight) in body
    }
    for path, key in restore.restored:
        np.testing.assert_array_equal(_weight(model, path), ssd_values["FeatureExtractor/" + key])


def test_a_v1_classification_fine_tune_checkpoint_in_a_config(tmp_path, ssd_values):
    prefix = classification_checkpoint(tmp_path, ssd_values)
    text = (REFERENCES / SSD / "pipeline.config").read_text()
    text = text.replace('"PATH_TO_BE_CONFIGURED/model.ckpt"', f'"{prefix}"').replace(
        'fine_tune_checkpoint_type: "detection"',
        'fine_tune_checkpoint_type: "classification"\n  fine_tune_checkpoint_version: V1',
    )
    (tmp_path / "pipeline.config").write_text(text)
    from kdet.configs import restore_fine_tune_checkpoint

    pipeline = load_pipeline(tmp_path / "pipeline.config")
    restore = restore_fine_tune_checkpoint(pipeline)
    assert len(restore.restored) == 260
    conv = next(w for w in pipeline.model.weights if w.path == "Conv1/kernel")
    np.testing.assert_array_equal(conv, ssd_values["FeatureExtractor/MobilenetV2/Conv/weights"])


def test_a_tf1_checkpoint_into_a_model_without_a_tf1_mapping_is_refused(tmp_path):
    # kdet's Faster R-CNN MobileNetV2 extractor has no TF1 mapping (the Faster R-CNN ResNets
    # have one: test_tfod_parity_tf1_faster_rcnn.py).
    folder = REFERENCES / "tf1_faster_rcnn_resnet50"
    text = (folder / "pipeline.config").read_text()
    config = tmp_path / "pipeline.config"
    config.write_text(
        text.replace('type: "faster_rcnn_resnet50"', 'type: "faster_rcnn_mobilenet_v2"')
    )
    with pytest.raises(CheckpointError, match="TF1 .* into a FasterRCNNMobileNetV2"):
        load_tfod_model(config, folder / "model.ckpt")
