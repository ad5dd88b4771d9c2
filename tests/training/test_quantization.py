"""Quantization-aware training: fake quantization from `delay` steps on, checkpoints, int8 TFLite."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_ssd_extractor

import kdet
from kdet.export import export_tflite
from kdet.training import trainer
from kdet.training.quantization import FakeQuantConv2D
from kdet.training.quantization import FakeQuantDepthwiseConv2D
from kdet.training.quantization import QuantizationAwareTraining

IMAGE_SIZE = 64


def _tiny_ssd(qat=None):
    keras.utils.set_random_seed(1)
    model = tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE)
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    if qat is not None:
        qat.apply(model)
    return model


def _images(count=2, seed=0):
    return kdet.datasets.shapes(count, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=seed)[0]


def _quantized_layers(model):
    return [layer for layer in model._flatten_layers() if hasattr(layer, "fake_quant")]


def _head_outputs(model, images, training):
    outputs = model(images.astype("float32"), training=training)
    return np.concatenate([np.asarray(outputs["box_encodings"]).ravel(),
                           np.asarray(outputs["class_logits"]).ravel()])


def test_fake_quantization_is_off_in_training_before_delay_and_on_from_delay():
    images = _images()
    float_model = _tiny_ssd()
    float_training = _head_outputs(float_model, images, training=True)
    float_inference = _head_outputs(float_model, images, training=False)
    model = _tiny_ssd()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    float_predictions = model.predict_on_batch(images.astype("float32"))
    QuantizationAwareTraining(delay=3).apply(model)
    # `predict` traced before the rewrite is traced again: its detections are quantized now.
    predictions = model.predict_on_batch(images.astype("float32"))
    assert np.abs(predictions["confidences"] - float_predictions["confidences"]).max() > 1e-4
    ranges_before = [float(w) for layer in _quantized_layers(model) for w in layer.fake_quant.weights]

    model.optimizer.iterations.assign(2)
    np.testing.assert_array_equal(_head_outputs(model, images, training=True), float_training)
    # The ranges are learned before `delay` too (TF1's MovingAvgQuantize).
    ranges_after = [float(w) for layer in _quantized_layers(model) for w in layer.fake_quant.weights]
    assert ranges_after != ranges_before

    model.optimizer.iterations.assign(3)
    quantized = _head_outputs(model, images, training=True)
    assert np.abs(quantized - float_training).max() > 1e-3
    np.testing.assert_allclose(quantized, float_training, atol=0.2)
    # Inference is always quantized (TF1's eval graph), whatever the step.
    model.optimizer.iterations.assign(0)
    assert np.abs(_head_outputs(model, images, training=False) - float_inference).max() > 1e-3


def test_the_forward_pass_uses_kernels_rounded_to_2_to_the_bits_levels_per_channel():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(1, 6, 6, 4)).astype("float32")
    conv = FakeQuantConv2D(3, 3, use_bias=False, fake_quant={"weight_bits": 4})
    depthwise = FakeQuantDepthwiseConv2D(3, depth_multiplier=2, use_bias=False,
                                         fake_quant={"weight_bits": 3})
    for layer, bits in ((conv, 4), (depthwise, 3)):
        layer.build(inputs.shape)
        kernel = rng.normal(size=layer.kernel.shape).astype("float32")
        layer.kernel.assign(kernel)
        # Symmetric narrow range: 2^bits - 1 levels, steps of max|w| / (2^(bits-1) - 1).
        channels = kernel.reshape(-1, kernel.shape[2] * kernel.shape[3]) if layer is depthwise \
            else kernel.reshape(-1, kernel.shape[-1])
        step = np.abs(channels).max(axis=0) / (2 ** (bits - 1) - 1)
        rounded = (np.round(channels / step) * step).reshape(kernel.shape)
        assert len(np.unique(np.round(channels / step))) <= 2 ** bits - 1
        if layer is conv:
            expected = tf.nn.conv2d(inputs, rounded, 1, "VALID")
        else:
            expected = tf.nn.depthwise_conv2d(inputs, rounded, [1, 1, 1, 1], "VALID")
        np.testing.assert_allclose(layer(inputs), expected, atol=1e-5)
        assert np.abs(layer(inputs) - (tf.nn.conv2d(inputs, kernel, 1, "VALID") if layer is conv
                      else tf.nn.depthwise_conv2d(inputs, kernel, [1, 1, 1, 1], "VALID"))).max() > 1e-3
        # The layers round-trip through their config.
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(clone) is type(layer)
        assert clone.fake_quant.get_config()["weight_bits"] == bits


def test_placement_quantizes_after_batch_norm_and_relu6_not_between_them():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = kdet.layers.FusedBatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    y = keras.layers.DepthwiseConv2D(3, use_bias=False, name="depthwise")(x)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    model = keras.Model(inputs, [keras.layers.Conv2D(2, 1, name="head")(y)])
    QuantizationAwareTraining().apply(model, input_shape=(None, 16, 16, 3))
    placement = {layer.name: (layer.fake_quant.quantize_inputs, layer.fake_quant.quantize_outputs)
                 for layer in _quantized_layers(model)}
    assert placement == {
        "conv": (True, False),  # the network input; its batch norm and ReLU6 fold into it
        "relu6": (False, True),
        "depthwise": (False, False),
        "project_bn": (False, True),  # a linear bottleneck: quantized after the batch norm
        "head": (False, True),
    }
    assert QuantizationAwareTraining.of(model) == QuantizationAwareTraining()
    with pytest.raises(ValueError, match="quantization-aware already"):
        QuantizationAwareTraining().apply(model)


def _dataset():
    images, y = kdet.datasets.shapes(4, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=1)
    return tf.data.Dataset.from_tensors((images.astype("float32"), y)).repeat()


def test_training_learns_ranges_that_a_checkpoint_saves_and_restores(tmp_path):
    model = _tiny_ssd(QuantizationAwareTraining(delay=1, ema_decay=0.5))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    trainer.train(model, _dataset(), tmp_path, num_steps=3, checkpoint_every_n=3, verbose=0)
    ranges = [[float(w) for w in layer.fake_quant.weights] for layer in _quantized_layers(model)]
    assert all(values[-2:] != [-6.0, 6.0] for values in ranges)

    restored = _tiny_ssd(QuantizationAwareTraining(delay=1, ema_decay=0.5))
    restored.compile(optimizer=keras.optimizers.SGD(0.01))
    trainer.restore_checkpoint(restored, trainer.checkpoint_path(tmp_path, 3),
                               (None, IMAGE_SIZE, IMAGE_SIZE, 3))
    assert [[float(w) for w in layer.fake_quant.weights]
            for layer in _quantized_layers(restored)] == ranges
    images = _images(seed=2).astype("float32")
    np.testing.assert_array_equal(_head_outputs(restored, images, False),
                                  _head_outputs(model, images, False))

    # A float model's weights load into a quantization-aware one, ranges left at their start.
    float_model = _tiny_ssd()
    float_model.set_weights([weight + 0.5 for weight in float_model.get_weights()])
    float_model.save_weights(tmp_path / "float.weights.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored.load_weights(tmp_path / "float.weights.h5", skip_mismatch=True)
    np.testing.assert_array_equal(restored.get_weights()[0], float_model.get_weights()[0])
    assert [[float(w) for w in layer.fake_quant.weights]
            for layer in _quantized_layers(restored)] == ranges


def _interpreter(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(model_path=str(path))


def _convolutions(interpreter):
    """`[(op name, input dtypes, output dtypes)]` of the convolutions of a TFLite model."""
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    return [
        (op["op_name"], [tensors[i]["dtype"] for i in op["inputs"]],
         [tensors[i]["dtype"] for i in op["outputs"]])
        for op in interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
    ]


def test_int8_export_of_a_quantization_aware_model_runs_int8_convolutions_with_its_ranges(tmp_path):
    model = _tiny_ssd(QuantizationAwareTraining(ema_decay=0.5))
    for _ in range(3):  # training-mode calls learn the activation ranges
        model(_images(4, seed=3).astype("float32"), training=True)
    export_tflite(model, tmp_path / "int8.tflite", progress=False)
    interpreter = _interpreter(tmp_path / "int8.tflite")
    convolutions = _convolutions(interpreter)
    assert len(convolutions) == 8
    for _, inputs, outputs in convolutions:
        assert inputs == [np.int8, np.int8, np.int32] and outputs == [np.int8]
    # The int8 model computes what the fake-quantized Keras model simulates.
    images = _images(2, seed=4)
    detect = interpreter.get_signature_runner()
    keras_detections = model.predict_on_batch(images.astype("float32"))
    for image, boxes, scores in zip(images, keras_detections["boxes"],
                                    keras_detections["confidences"]):
        tflite = detect(input_tensor=image[np.newaxis])
        np.testing.assert_allclose(tflite["detection_scores"][0, :5], scores[:5], atol=0.02)
        # Near-equal scores may swap places: each top TFLite box is a Keras box of its score.
        for box, score in zip(tflite["detection_boxes"][0, :5], tflite["detection_scores"][0, :5]):
            distance = np.abs(np.asarray(boxes) / IMAGE_SIZE - box).max(axis=1)
            distance[np.abs(np.asarray(scores) - score) > 0.02] = np.inf
            assert distance.min() < 0.03
    with pytest.raises(ValueError, match="quantization-aware.*quantization=\"int8\""):
        export_tflite(model, tmp_path / "dynamic.tflite", quantization="dynamic_range")


def test_int8_export_of_a_float_model_calibrates_on_representative_images(tmp_path):
    model = _tiny_ssd()
    with pytest.raises(ValueError, match="needs representative_images"):
        export_tflite(model, tmp_path / "int8.tflite", quantization="int8", progress=False)
    with pytest.raises(ValueError, match="calibrate an int8 model: they need quantization"):
        export_tflite(model, tmp_path / "dynamic.tflite", quantization="dynamic_range",
                      progress=False, representative_images=_images(4, seed=5))
    export_tflite(model, tmp_path / "int8.tflite", quantization="int8", progress=False,
                  representative_images=_images(4, seed=5))
    interpreter = _interpreter(tmp_path / "int8.tflite")
    assert {tuple(outputs) for _, _, outputs in _convolutions(interpreter)} == {(np.int8,)}
    result = interpreter.get_signature_runner()(input_tensor=_images(1, seed=6))
    assert result["detection_boxes"].shape == (1, model.max_detections, 4)
    # The ops after the NMS op stay float: whole label ids, boxes not rounded to 1/255 steps.
    classes = result["detection_classes"][0, : int(result["num_detections"][0])]
    assert classes.size and np.array_equal(classes, np.round(classes))
    assert not np.allclose(result["detection_boxes"] * 255, np.round(result["detection_boxes"] * 255))


def test_serialization_of_the_settings():
    qat = QuantizationAwareTraining(delay=48000, weight_bits=8, activation_bits=8)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(qat))
    assert restored == qat
    with pytest.raises(ValueError, match="weight_bits must be in"):
        QuantizationAwareTraining(weight_bits=1)


def _trained_ranges(strategy):
    with strategy.scope():
        model = _tiny_ssd(QuantizationAwareTraining(delay=1, ema_decay=0.5))
        model.compile(optimizer=keras.optimizers.SGD(0.001))
    model.fit(_dataset(), steps_per_epoch=3, epochs=1, verbose=0)
    return np.array([np.asarray(weight.numpy()) for layer in _quantized_layers(model)
                     for weight in layer.fake_quant.weights])


@pytest.mark.large
def test_ranges_are_learned_over_the_global_batch_one_or_two_replicas_alike(two_replica_strategy):
    one = _trained_ranges(tf.distribute.get_strategy())
    two = _trained_ranges(two_replica_strategy)
    assert not np.allclose(one, np.tile([-6.0, 6.0], len(one) // 2))
    np.testing.assert_allclose(two, one, atol=1e-5)


def test_a_mixed_precision_quantization_aware_model_exports_every_convolution_in_int8(tmp_path):
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _tiny_ssd(QuantizationAwareTraining())
    finally:
        keras.config.set_dtype_policy(policy)
    model(_images(2, seed=7).astype("float32"), training=True)
    export_tflite(model, tmp_path / "int8.tflite", progress=False)
    interpreter = _interpreter(tmp_path / "int8.tflite")
    convolutions = _convolutions(interpreter)
    # The feature extractor's four and the box predictor's four (the heads' `Sequential`s
    # cast their inputs to bfloat16 and back, which the export bypasses).
    assert len(convolutions) == 8
    for _, inputs, outputs in convolutions:
        assert inputs == [np.int8, np.int8, np.int32] and outputs == [np.int8]
    image = _images(1, seed=8)
    scores = interpreter.get_signature_runner()(input_tensor=image)["detection_scores"][0, :5]
    keras_scores = model.predict_on_batch(image.astype("float32"))["confidences"][0, :5]
    np.testing.assert_allclose(scores, keras_scores, atol=0.05)
    # The export computed in float32 for the converter and left the model as it was.
    assert {layer.dtype_policy.name for layer in _quantized_layers(model)} == {"mixed_bfloat16"}


def test_a_keras_file_of_a_quantization_aware_detector_loads_quantization_aware(tmp_path):
    qat = QuantizationAwareTraining(delay=5, ema_decay=0.5)
    model = _tiny_ssd(qat)
    for seed in range(2):  # training-mode calls learn the activation ranges
        model(_images(4, seed=seed).astype("float32"), training=True)
    assert model.quantization == qat
    model.save(tmp_path / "qat.keras")

    loaded = keras.saving.load_model(tmp_path / "qat.keras")
    assert loaded.quantization == qat and QuantizationAwareTraining.of(loaded) == qat
    assert ([float(w) for layer in _quantized_layers(loaded) for w in layer.fake_quant.weights]
            == [float(w) for layer in _quantized_layers(model) for w in layer.fake_quant.weights])
    images = _images(2, seed=9)
    np.testing.assert_array_equal(_head_outputs(loaded, images, False),
                                  _head_outputs(model, images, False))
    export_tflite(loaded, tmp_path / "int8.tflite", progress=False)
    convolutions = _convolutions(_interpreter(tmp_path / "int8.tflite"))
    assert len(convolutions) == 8 and all(outputs == [np.int8] for _, _, outputs in convolutions)
    # A detector constructed with `quantization` is rewritten when it is built.
    rebuilt = type(model).from_config(model.get_config())
    assert QuantizationAwareTraining.of(rebuilt) is None
    rebuilt.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    assert QuantizationAwareTraining.of(rebuilt) == qat
    with pytest.raises(TypeError, match="quantization must be a"):
        kdet.SSD(num_classes=2, feature_extractor=tiny_ssd_extractor.NAME, quantization=8)
