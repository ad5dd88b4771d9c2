"""TF OD API TF1 name-based checkpoints of SSD FPN models with the weight-shared box predictor
(the TF1 zoo's `ssd_{mobilenet_v1,resnet50_v1}_fpn_shared_box_predictor_*`, RetinaNet style, and
the FPNLite `ssd_mobilenet_v2_fpnlite_quantized_shared_box_predictor_*`) load into kdet's models
of the same configs, which then compute what the TF OD API's TF1 code computes.

`tests/data/tfod_reference/tf1_ssd_mobilenet_v1_fpn/` and `tf1_ssd_resnet50_v1_fpn/` are the
TF1 sample configs `ssd_{mobilenet_v1,resnet50_v1}_fpn_shared_box_predictor_640x640_coco14_sync
.config` reduced (depth multiplier 0.125 / 0.0625, 128 / 160 px, 3 classes, pyramid 16 and
predictor 32 channels), built, given seeded random weights and run on `photo.png` by
`tools/tfod_reference/make_tf1_references.py` with the TF OD API's own TF1 (slim, graph mode)
code (see `test_tfod_parity_tf1.py`). `tf1_ssd_mobilenet_v2_fpnlite/` is a float copy (no
`graph_rewriter`) of the TF1 sample config
`ssd_mobilenet_v2_fpnlite_quantized_shared_box_predictor_256x256_depthmultiplier_75_coco14_sync
.config` reduced alike (depth multiplier 0.075, 128 px, 3 classes, pyramid and predictor 16
channels, separable), its kernels drawn from N(0, 0.3) rather than N(0, 0.01) (which batch
norms of epsilon 1e-3 would flatten).
"""

import numpy as np
import pytest
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import assert_ssd_feature_maps_match
from tfod_references import assert_ssd_outputs_match
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import load_tfod_model
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.checkpoints.tfod_mapping import tf1_layer_pairs
from kdet.configs import load_pipeline
from kdet.feature_extractors import SSDMobileNetV1FPNFeatureExtractor
from kdet.feature_extractors import SSDMobileNetV2FPNFeatureExtractor
from kdet.feature_extractors import SSDResNet50V1FPNFeatureExtractor

NAME = "tf1_ssd_mobilenet_v1_fpn"
FOLDER = REFERENCES / NAME
RESNET = "tf1_ssd_resnet50_v1_fpn"
FPNLITE = "tf1_ssd_mobilenet_v2_fpnlite"
# Weights of each reference model (every one restored from the checkpoint).
WEIGHTS = {NAME: 333, RESNET: 448, FPNLITE: 384}


@pytest.fixture(scope="module", params=list(WEIGHTS))
def name(request):
    return request.param


@pytest.fixture(scope="module")
def ssd(name):
    """`(model, TFODRestore)` of the reference, restored "full"."""
    folder = REFERENCES / name
    return load_tfod_model(folder / "pipeline.config", folder / "model.ckpt")


def _layer_and_weight(path):
    """`conv_pw_3_bn/gamma` of the weight path `…/conv_pw_3_bn/gamma`."""
    return "/".join(path.split("/")[-2:])


def test_the_config_builds_the_tf1_layout(ssd):
    model, _ = ssd
    extractor = model.feature_extractor
    assert extractor.slim_layout and extractor.feature_pyramid.slim_layout
    assert not model.box_predictor.use_conv_hyperparams_activation  # ReLU6, the slim towers'
    config = extractor.get_config()
    assert type(extractor).from_config(config).get_config() == config


def test_every_checkpoint_variable_is_restored(name, ssd):
    model, restore = ssd
    checkpoint = TFODCheckpoint.open(REFERENCES / name)
    assert checkpoint.version == "V1"
    assert sorted(key for _, key in restore.restored) == sorted(checkpoint.shapes)
    assert len(restore.restored) == len(model.weights) == WEIGHTS[name]
    assert not restore.not_restored and not restore.unused
    assert restore.ignored == ["global_step"]


def test_slim_names_pair_the_mobilenet_layers_they_name():
    _, restore = load_tfod_model(FOLDER / "pipeline.config", FOLDER / "model.ckpt")
    restored = {_layer_and_weight(path): key for path, key in restore.restored}
    extractor = "FeatureExtractor/MobilenetV1/"
    predictor = "WeightSharedConvolutionalBoxPredictor/"
    expected = {
        "conv1/kernel": extractor + "Conv2d_0/weights",
        "conv1_bn/gamma": extractor + "Conv2d_0/BatchNorm/gamma",
        "conv_dw_3/kernel": extractor + "Conv2d_3_depthwise/depthwise_weights",
        "conv_pw_13_bn/moving_variance": (
            extractor + "Conv2d_13_pointwise/BatchNorm/moving_variance"
        ),
        # Levels 3..5 read Conv2d_5, 11 and 13: projections and smoothings counted from 1.
        "projection_3/bias": extractor + "fpn/projection_1/biases",
        "projection_5/kernel": extractor + "fpn/projection_3/weights",
        "smoothing_4_batchnorm/beta": extractor + "fpn/smoothing_2/BatchNorm/beta",
        "bottom_up_6_conv/kernel": extractor + "fpn/bottom_up_Conv2d_14/weights",
        "bottom_up_7_batchnorm/moving_mean": (
            extractor + "fpn/bottom_up_Conv2d_15/BatchNorm/moving_mean"
        ),
        "box_tower_conv_3/kernel": predictor + "BoxPredictionTower/conv2d_3/weights",
        "class_tower_batchnorm_2_level_4/gamma": (
            predictor + "ClassPredictionTower/conv2d_2/BatchNorm/feature_4/gamma"
        ),
        "box_predictor/kernel": predictor + "BoxPredictor/weights",
        "class_predictor/bias": predictor + "ClassPredictor/biases",
    }
    for kdet_weight, slim_name in expected.items():
        assert restored[kdet_weight] == slim_name


def test_slim_names_pair_the_resnet_layers_they_name():
    folder = REFERENCES / RESNET
    model, restore = load_tfod_model(folder / "pipeline.config", folder / "model.ckpt")
    restored = {_layer_and_weight(path): key for path, key in restore.restored}
    extractor = "FeatureExtractor/resnet_v1_50/"
    expected = {
        "conv1_conv/kernel": extractor + "conv1/weights",
        "conv3_block4_2_conv/kernel": extractor + "block2/unit_4/bottleneck_v1/conv2/weights",
        "conv5_block1_0_bn/gamma": extractor + "block4/unit_1/bottleneck_v1/shortcut/BatchNorm/gamma",
        "projection_5/bias": extractor + "fpn/projection_3/biases",
        "bottom_up_6_conv/kernel": extractor + "fpn/bottom_up_block5/weights",
        "bottom_up_7_batchnorm/beta": extractor + "fpn/bottom_up_block6/BatchNorm/beta",
    }
    for kdet_weight, slim_name in expected.items():
        assert restored[kdet_weight] == slim_name
    # The body's batch norms keep slim's resnet_arg_scope epsilon under the override, the
    # pyramid's are the config's.
    body = model.feature_extractor.body
    assert body.get_layer("conv2_block1_1_bn").epsilon == 1e-5
    pyramid = model.feature_extractor.feature_pyramid
    assert pyramid.smoothing_blocks[0].layers[1].epsilon == 1e-3


def test_slim_names_pair_the_fpnlite_layers_they_name():
    folder = REFERENCES / FPNLITE
    model, restore = load_tfod_model(folder / "pipeline.config", folder / "model.ckpt")
    restored = {_layer_and_weight(path): key for path, key in restore.restored}
    extractor = "FeatureExtractor/MobilenetV2/"
    predictor = "WeightSharedConvolutionalBoxPredictor/"
    expected = {
        "Conv1/kernel": extractor + "Conv/weights",
        "expanded_conv_depthwise/kernel": extractor + "expanded_conv/depthwise/depthwise_weights",
        "block_16_project_BN/moving_mean": (
            extractor + "expanded_conv_16/project/BatchNorm/moving_mean"
        ),
        "Conv_1/kernel": extractor + "Conv_1/weights",
        # Levels 3..5 read layer_7, 14 and 19; the separable layers are slim separable_conv2d.
        "projection_3/kernel": extractor + "fpn/projection_1/weights",
        "smoothing_4_depthwise_conv/depthwise_kernel": (
            extractor + "fpn/smoothing_2/depthwise_weights"
        ),
        "smoothing_3_depthwise_conv/pointwise_kernel": (
            extractor + "fpn/smoothing_1/pointwise_weights"
        ),
        "smoothing_3_batchnorm/gamma": extractor + "fpn/smoothing_1/BatchNorm/gamma",
        "bottom_up_6_depthwise_conv/depthwise_kernel": (
            extractor + "fpn/bottom_up_Conv2d_20/depthwise_weights"
        ),
        "bottom_up_7_batchnorm/beta": extractor + "fpn/bottom_up_Conv2d_21/BatchNorm/beta",
        "prediction_tower_conv_3/pointwise_kernel": (
            predictor + "PredictionTower/conv2d_3/pointwise_weights"
        ),
        "prediction_tower_batchnorm_1_level_4/moving_variance": (
            predictor + "PredictionTower/conv2d_1/BatchNorm/feature_4/moving_variance"
        ),
        "box_predictor/depthwise_kernel": predictor + "BoxPredictor/depthwise_weights",
        "class_predictor/bias": predictor + "ClassPredictor/biases",
    }
    for kdet_weight, slim_name in expected.items():
        assert restored[kdet_weight] == slim_name
    # TF1 FPNLite's Conv_1: 256 x 0.075 = 19.2, rounded to a multiple of 8 within 90%: 24.
    assert model.feature_extractor.body.get_layer("Conv_1").filters == 24


def test_raw_outputs_match_the_tf_od_api(name, ssd):
    model, _ = ssd
    expected = reference(name)
    assert_ssd_feature_maps_match(model, expected)
    assert_ssd_outputs_match(model, expected)


def test_detections_match_the_tf_od_api_as_sets(name, ssd):
    model, _ = ssd
    image = photo()
    assert_same_detections(model.predict_on_batch(image[None]), reference(name), image.shape)


def test_the_tf2_top_down_pathway_would_not_match(name, ssd):
    # The same weights with the Keras FPN's pathway (the smoothed map carried down): the
    # finer levels' logits move far beyond the tolerance.
    model, _ = ssd
    pyramid = model.feature_extractor.feature_pyramid
    expected = reference(name)["predict/class_predictions_with_background"]
    pyramid.slim_layout = False
    try:
        logits = np.asarray(model(photo()[None], training=False)["class_logits"])
    finally:
        pyramid.slim_layout = True
    assert np.abs(logits - expected).max() > 0.1


@pytest.mark.parametrize(
    "extractor",
    [
        lambda: SSDMobileNetV1FPNFeatureExtractor(depth_multiplier=0.125),
        lambda: SSDResNet50V1FPNFeatureExtractor(depth_multiplier=0.0625),
        lambda: SSDMobileNetV2FPNFeatureExtractor(depth_multiplier=0.075),
    ],
)
def test_a_tf2_layout_extractor_refuses_tf1_names(extractor):
    with pytest.raises(CheckpointError, match="slim_layout=True"):
        tf1_layer_pairs(extractor(), "FeatureExtractor")


def test_a_detection_restore_reads_the_extractor_only(name, tmp_path):
    folder = REFERENCES / name
    text = (folder / "pipeline.config").read_text().replace("num_classes: 3", "num_classes: 5")
    (tmp_path / "pipeline.config").write_text(text)
    model = load_pipeline(tmp_path / "pipeline.config").model
    restore = restore_tfod_checkpoint(model, folder, "detection")
    assert {key.split("/")[0] for _, key in restore.restored} == {"FeatureExtractor"}
    assert restore.unused and all(
        key.startswith("WeightSharedConvolutionalBoxPredictor/") for key in restore.unused
    )
    expected = reference(name)
    feature_maps = model.feature_extractor(expected["predict/preprocessed_inputs"])
    for index, feature_map in enumerate(feature_maps):
        np.testing.assert_allclose(
            feature_map, expected[f"predict/feature_maps/{index}"], atol=RAW_TOLERANCE
        )
