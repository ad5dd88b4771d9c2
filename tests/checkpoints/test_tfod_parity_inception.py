"""TF OD API TF1 checkpoints of the slim Inception extractors (`ssd_inception_v2`,
`ssd_inception_v3`, `faster_rcnn_inception_v2`) load into kdet models that then compute what
the TF OD API's TF1 code computes; a slim `inception_v2.ckpt` starts the Faster R-CNN body.

`tests/data/tfod_reference/tf1_{ssd_inception_v2,ssd_inception_v3,faster_rcnn_inception_v2}/`
were made by `tools/tfod_reference/make_inception_references.py` with the TF OD API's TF1 code
from its sample configs, narrowed (see that script): the SSD configs carry their
`depth_multiplier` and `min_depth`; the Faster R-CNN one has no field for them, so its model
here is the config's with `FASTER_RCNN_WIDTH`.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf
from tfod_references import REFERENCES
from tfod_references import assert_faster_rcnn_outputs_match
from tfod_references import assert_same_detections
from tfod_references import assert_ssd_feature_maps_match
from tfod_references import assert_ssd_outputs_match
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import load_tfod_model
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN

SSD_REFERENCES = ("tf1_ssd_inception_v2", "tf1_ssd_inception_v3")
FASTER_RCNN = "tf1_faster_rcnn_inception_v2"
# The width the generator gave the TF OD API's FasterRCNNInceptionV2FeatureExtractor.
FASTER_RCNN_WIDTH = {"depth_multiplier": 0.0625, "min_depth": 8}


@functools.cache
def restored_ssd(name):
    folder = REFERENCES / name
    return load_tfod_model(folder / "pipeline.config", folder / "model.ckpt")


@functools.cache
def restored_faster_rcnn():
    model = load_pipeline(REFERENCES / FASTER_RCNN / "pipeline.config", dtype_policy="float32").model
    config = model.get_config()
    config["feature_extractor"]["config"].update(FASTER_RCNN_WIDTH)
    model = FasterRCNN.from_config(config)
    return model, restore_tfod_checkpoint(model, REFERENCES / FASTER_RCNN / "model.ckpt")


def _restored(name):
    return restored_faster_rcnn() if name == FASTER_RCNN else restored_ssd(name)


@pytest.mark.parametrize("name", [*SSD_REFERENCES, FASTER_RCNN])
def test_every_checkpoint_variable_is_restored(name):
    model, restore = _restored(name)
    checkpoint = TFODCheckpoint.open(REFERENCES / name / "model.ckpt")
    assert sorted(key for _, key in restore.restored) == sorted(checkpoint.shapes)
    assert len(restore.restored) == len(model.weights)
    assert not restore.not_restored and not restore.unused
    assert restore.ignored == ["global_step"]


def test_slim_names_pair_the_layers_they_name():
    expected = {
        "tf1_ssd_inception_v2": {
            "Conv2d_1a_7x7_conv/depthwise_kernel":
                "FeatureExtractor/InceptionV2/Conv2d_1a_7x7/depthwise_weights",
            "Mixed_4c_Branch_2_Conv2d_0c_3x3_batchnorm/moving_variance":
                "FeatureExtractor/InceptionV2/Mixed_4c/Branch_2/Conv2d_0c_3x3/BatchNorm/"
                "moving_variance",
            "Mixed_5c_2_Conv2d_2_3x3_s2_32_conv/kernel":
                "FeatureExtractor/InceptionV2/Mixed_5c_2_Conv2d_2_3x3_s2_32/weights",
        },
        "tf1_ssd_inception_v3": {
            "Mixed_5c_Branch_1_Conv_1_0c_5x5_conv/kernel":
                "FeatureExtractor/InceptionV3/Mixed_5c/Branch_1/Conv_1_0c_5x5/weights",
            "Mixed_7b_Branch_1_Conv2d_0b_3x1_batchnorm/gamma":
                "FeatureExtractor/InceptionV3/Mixed_7b/Branch_1/Conv2d_0b_3x1/BatchNorm/gamma",
        },
        FASTER_RCNN: {
            "Mixed_4e_Branch_3_Conv2d_0b_1x1_conv/kernel":
                "FirstStageFeatureExtractor/InceptionV2/Mixed_4e/Branch_3/Conv2d_0b_1x1/weights",
            "Mixed_5a_Branch_1_Conv2d_1a_3x3_batchnorm/beta":
                "SecondStageFeatureExtractor/InceptionV2/Mixed_5a/Branch_1/Conv2d_1a_3x3/"
                "BatchNorm/beta",
        },
    }
    for name, pairs in expected.items():
        restored = {
            "/".join(path.split("/")[-2:]): key for path, key in _restored(name)[1].restored
        }
        for kdet_weight, slim_name in pairs.items():
            assert restored[kdet_weight] == slim_name


@pytest.mark.parametrize("name", SSD_REFERENCES)
def test_ssd_raw_outputs_match_the_tf_od_api(name):
    model, _ = restored_ssd(name)
    expected = reference(name)
    assert_ssd_feature_maps_match(model, expected)
    assert_ssd_outputs_match(model, expected)


def test_faster_rcnn_raw_outputs_match_the_tf_od_api():
    model, _ = restored_faster_rcnn()
    expected = reference(FASTER_RCNN)
    outputs = model(photo()[None], training=False)
    height, width = expected["predict/preprocessed_inputs"].shape[1:3]
    assert_faster_rcnn_outputs_match(model, outputs, expected, (height, width))


@pytest.mark.parametrize("name", [*SSD_REFERENCES, FASTER_RCNN])
def test_detections_match_the_tf_od_api_as_sets(name):
    model, _ = _restored(name)
    image = photo()
    assert_same_detections(model.predict_on_batch(image[None]), reference(name), image.shape)


def test_a_slim_classification_checkpoint_starts_both_stages(tmp_path):
    # inception_v2.ckpt of the slim model zoo: `InceptionV2/{Conv2d_1a_7x7, ..., Mixed_5c}/…`
    # and a classifier (`InceptionV2/Logits`) the restore leaves unused. Its values here: the
    # reference's two stages under the classification names.
    reader = tf.train.load_checkpoint(str(REFERENCES / FASTER_RCNN / "model.ckpt"))
    values = {
        key.partition("/")[2]: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.startswith(("FirstStageFeatureExtractor/", "SecondStageFeatureExtractor/"))
    }
    values["InceptionV2/Logits/Conv2d_1c_1x1/weights"] = np.ones([1, 1, 64, 10], np.float32)
    names = sorted(values)
    prefix = str(tmp_path / "inception_v2.ckpt")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(values[name]) for name in names],
    )
    full, _ = restored_faster_rcnn()
    model = FasterRCNN.from_config(full.get_config())
    model.build((None, None, None, 3))
    restore = restore_tfod_checkpoint(model, prefix, "classification")
    assert sorted(path for path, _ in restore.restored) == sorted(
        weight.path for weight in model.feature_extractor.weights
    )
    assert restore.unused == ["InceptionV2/Logits/Conv2d_1c_1x1/weights"]
    for ours, theirs in zip(model.feature_extractor.weights, full.feature_extractor.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
