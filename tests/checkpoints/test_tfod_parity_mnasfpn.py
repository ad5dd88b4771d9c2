"""A TF OD API TF1 name-based checkpoint of SSD MobileNetV2 MnasFPN loads into kdet's model of
the same config, which then computes what the TF OD API's TF1 code computes.

`tests/data/tfod_reference/tf1_ssd_mobilenet_v2_mnasfpn/` is the TF1 sample config
`ssd_mobilenet_v2_mnasfpn_shared_box_predictor_320x320_coco_sync.config` reduced (depth
multiplier 0.125, predictor depth 16, 128 px, 3 classes), built, given seeded random weights and
run on `photo.png` by `tools/tfod_reference/make_mnasfpn_references.py` with the TF OD API's own
TF1 (slim, graph mode) code. kdet builds the model from the written config unchanged, restores
the checkpoint (every variable used) and must match the feature maps, box encodings and logits
within 1e-3. Detections are not compared: with these random weights (the weight-shared
predictor's class kernels of stddev 0.01) the scores tie, ten per class at 0.5340 and 0.5202,
so which tied boxes NMS keeps is arbitrary; the SSD's postprocessing is checked on the other
references.
"""

import pytest
from tfod_references import REFERENCES
from tfod_references import assert_ssd_feature_maps_match
from tfod_references import assert_ssd_outputs_match
from tfod_references import reference

from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import load_tfod_model

NAME = "tf1_ssd_mobilenet_v2_mnasfpn"

# kdet layer/weight → slim name, spot checks of the body and each kind of head layer.
SLIM_NAMES = {
    "block_5_project_BN/gamma": "MobilenetV2/expanded_conv_5/project/BatchNorm/gamma",
    "C6_Conv1x1/conv/kernel": "MnasFPN/C6_Conv1x1/weights",
    "cell_3_block_4/input_1/Conv1x1/batchnorm/moving_mean": (
        "MnasFPN/cell_3/block_4/input_1/Conv1x1/BatchNorm/moving_mean"
    ),
    "cell_0_block_3/SepConv/depthwise_kernel": "MnasFPN/cell_0/block_3/SepConv/depthwise_weights",
    "cell_0_block_3/SepConv_BatchNorm/beta": "MnasFPN/cell_0/block_3/SepConv/BatchNorm/beta",
}


@pytest.fixture(scope="module")
def ssd():
    """`(model, TFODRestore)` of the reference, restored "full"."""
    folder = REFERENCES / NAME
    return load_tfod_model(folder / "pipeline.config", folder / "model.ckpt")


def test_every_checkpoint_variable_is_restored(ssd):
    model, restore = ssd
    checkpoint = TFODCheckpoint.open(REFERENCES / NAME)
    assert sorted(key for _, key in restore.restored) == sorted(checkpoint.shapes)
    assert len(restore.restored) == len(model.weights)
    assert not restore.not_restored and not restore.unused
    assert restore.ignored == ["global_step"]


def test_slim_names_pair_the_layers_they_name(ssd):
    restored = {}
    for path, key in ssd[1].restored:
        restored.setdefault(path, key)
    for kdet_path, slim_name in SLIM_NAMES.items():
        keys = [key for path, key in restored.items() if f"/{path}".endswith(f"/{kdet_path}")]
        assert "FeatureExtractor/" + slim_name in keys, (kdet_path, keys)


def test_outputs_match_the_tf_od_api(ssd):
    model, _ = ssd
    expected = reference(NAME)
    assert_ssd_feature_maps_match(model, expected, relative=True)
    assert_ssd_outputs_match(model, expected)
