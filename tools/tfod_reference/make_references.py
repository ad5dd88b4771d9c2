"""Make small TF OD API reference models for kdet's checkpoint-reader parity tests.

Runs inside the reference venv made by `setup_venv.sh` (the TF OD API's own code, never kdet's):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python tools/tfod_reference/make_references.py

For each architecture in `REFERENCES` it reads a TF OD API TF2 sample config from
`tests/data/tfod_configs/`, reduces it for size (128 px input, 3 classes, narrow layers, few
proposals and detections; every reduction is a config field, listed per reference), builds the
model with the TF OD API's `model_builder.build`, gives it seeded random weights with batch-norm
statistics calibrated on the photo and then perturbed (so no statistic is a trivial 0 or 1), and
writes into `tests/data/tfod_reference/<name>/`:

- `checkpoint/ckpt-0.index`, `checkpoint/ckpt-0.data-00000-of-00001`, `checkpoint/checkpoint`:
  a TF2 object-based checkpoint of `tf.train.Checkpoint(model=detection_model)` saved with a
  `tf.train.CheckpointManager` as `exporter_lib_v2` and the TF2 detection zoo archives hold it;
- `pipeline.config`: the reduced config the model was built from;
- `variables.txt`: every checkpoint variable, `name<TAB>dtype<TAB>shape`, as
  `tf.train.list_variables` reports it (slot variables and the object graph included);
- `outputs.npz`: the TF OD API's eager `preprocess` → `predict` → `postprocess` on the reference
  photo: `input_image` is not stored (it is `../photo.png`), `true_image_shapes`,
  every tensor of the `predict` dictionary under `predict/<key>` (a list of feature maps as
  `predict/<key>/<i>`; `predict/preprocessed_inputs` is the resizer's output for every model) and every tensor of the `postprocess` dictionary under
  `detections/<key>` (detection classes are 0-based, without the exporter's +1 label offset),
  and the `serving_default` outputs of the TF OD API's own export of the checkpoint
  (`exporter_lib_v2`, `image_tensor` input, uint8 photo) under `exported/<key>`.

`make_tf1_references.py` makes the TF1 (slim, graph mode) references; see README.md.
"""

import argparse
import contextlib
import functools
import os
import pathlib
import shutil
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from object_detection import exporter_lib_v2
from object_detection.builders import model_builder
from object_detection.models import faster_rcnn_resnet_v1_fpn_keras_feature_extractor as fpn_frcnn
from object_detection.models.keras_models import resnet_v1
from reference_common import OUTPUT_DIR
from reference_common import REFERENCES
from reference_common import flatten
from reference_common import load_photo
from reference_common import reduced_config


@functools.cache
def _original_resnets():
    return {name: getattr(resnet_v1, name) for name in ("resnet_v1_50", "resnet_v1_101")}


@contextlib.contextmanager
def resnet_width(depth_multiplier):
    """Make the TF OD API's `resnet_v1.resnet_v1_50/101` build `depth_multiplier` wide.

    `None` keeps the full width. See `Reference.resnet_depth_multiplier`.
    """
    if depth_multiplier is not None:
        for name, builder in _original_resnets().items():
            setattr(resnet_v1, name, functools.partial(builder, depth_multiplier=depth_multiplier))
    try:
        yield
    finally:
        for name, builder in _original_resnets().items():
            setattr(resnet_v1, name, builder)


# Width of the Faster R-CNN FPN box classifier's two fully connected layers, per reference. The
# TF OD API hard-codes 1024 (`FasterRCNNResnetV1FpnKerasFeatureExtractor.
# get_box_classifier_feature_extractor_model`), whose 1024x1024 kernel alone is 4.2 MB.
FPN_BOX_CLASSIFIER_UNITS = {"faster_rcnn_resnet50_fpn": 32}


def _fpn_box_classifier(units):
    """`get_box_classifier_feature_extractor_model` of the TF OD API's ResNet FPN extractor with
    `units` instead of 1024: the same layers (flatten, ReLU dense, batch norm of the extractor's
    `conv_hyperparams`, ReLU dense, reshape to `[n, 1, 1, units]`), so the same object paths."""

    def get_box_classifier_feature_extractor_model(self, name=None):
        with tf.name_scope(name), tf.name_scope("ResnetV1FPN"):
            return tf.keras.models.Sequential(
                [
                    tf.keras.layers.Flatten(),
                    tf.keras.layers.Dense(units=units, activation="relu"),
                    self._conv_hyperparams.build_batch_norm(
                        training=(self._is_training and not self._freeze_batchnorm)
                    ),
                    tf.keras.layers.Dense(units=units, activation="relu"),
                    tf.keras.layers.Reshape((1, 1, units)),
                ]
            )

    return get_box_classifier_feature_extractor_model


@contextlib.contextmanager
def fpn_box_classifier_width(units):
    """Make the TF OD API's ResNet FPN box classifier `units` wide (`None`: 1024, as it is)."""
    cls = fpn_frcnn.FasterRCNNResnetV1FpnKerasFeatureExtractor
    original = cls.get_box_classifier_feature_extractor_model
    if units is not None:
        cls.get_box_classifier_feature_extractor_model = _fpn_box_classifier(units)
    try:
        yield
    finally:
        cls.get_box_classifier_feature_extractor_model = original


def build_model(pipeline, reference):
    """The TF OD API's `model_builder.build` of the reduced config, for inference."""
    with resnet_width(reference.resnet_depth_multiplier):
        return model_builder.build(pipeline.model, is_training=False)


def _batch_norms(model):
    """Every batch-norm layer of `model` (Keras' and the TF OD API's `FreezableBatchNorm`)."""
    return [
        layer
        for layer in model.submodules
        if hasattr(layer, "moving_mean") and hasattr(layer, "moving_variance")
    ]


def calibrate_batch_norms(model, preprocessed, true_image_shapes, rng):
    """Draw every batch norm's gamma and beta, set its moving statistics from the photo, perturb.

    A random-weight network whose moving statistics stay at 0 / 1 explodes or vanishes and
    tests nothing about them. Here gammas are drawn from U(0.4, 0.8) (below 1, so that deep
    residual stacks do not blow up) and betas from N(0, 0.1); then each layer's moving statistics
    are set to the batch statistics of its input on the photo (one training-mode `predict` with
    momentum 0: a forward pass, no gradient step) and perturbed: the mean shifted by
    N(0, 0.1) standard deviations, the variance scaled by U(0.8, 1.25). Returns the number of
    batch-norm layers.
    """
    layers = _batch_norms(model)
    for layer in layers:
        shape = layer.moving_mean.shape
        if layer.gamma is not None:
            layer.gamma.assign(rng.uniform(0.4, 0.8, shape))
        if layer.beta is not None:
            layer.beta.assign(0.1 * rng.standard_normal(shape))
    saved = [(layer, layer.momentum, getattr(layer, "_training", None)) for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
        if hasattr(layer, "_training"):
            layer._training = True
    tf.keras.backend.set_learning_phase(1)
    try:
        model.predict(preprocessed, true_image_shapes)
    finally:
        tf.keras.backend.set_learning_phase(0)
        for layer, momentum, training in saved:
            layer.momentum = momentum
            if training is not None:
                layer._training = training
    for layer in layers:
        shape = layer.moving_mean.shape
        std = np.sqrt(layer.moving_variance.numpy())
        layer.moving_mean.assign(layer.moving_mean.numpy() + 0.1 * std * rng.standard_normal(shape))
        layer.moving_variance.assign(
            layer.moving_variance.numpy() * rng.uniform(0.8, 1.25, shape) + 1e-4
        )
    return len(layers)


def randomize_biases(model, rng):
    """Draw every non-batch-norm bias (conv, dense, head layers) from N(0, 0.05)."""
    norms = {id(v) for layer in _batch_norms(model) for v in layer.weights}
    count = 0
    for variable in model.trainable_variables:
        if id(variable) not in norms and variable.name.split("/")[-1].startswith("bias"):
            variable.assign(0.05 * rng.standard_normal(variable.shape))
            count += 1
    return count


def run_model(model, image):
    """`preprocess` → `predict` → `postprocess`; returns the flat dict saved in outputs.npz."""
    preprocessed, true_image_shapes = model.preprocess(image)
    prediction = model.predict(preprocessed, true_image_shapes)
    detections = model.postprocess(prediction, true_image_shapes)
    out = {"true_image_shapes": np.asarray(true_image_shapes)}
    if "preprocessed_inputs" not in prediction:  # SSD's predict returns it, Faster R-CNN's not
        out["predict/preprocessed_inputs"] = preprocessed.numpy()
    for key, value in prediction.items():
        flatten(f"predict/{key}", value, out)
    for key, value in detections.items():
        flatten(f"detections/{key}", value, out)
    return out


def make_reference(name, reference, output_dir):
    """Build, randomize, save and run one reference model into `output_dir / name`."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(reference.seed)  # Python, NumPy, TF and Keras seeds
    rng = np.random.default_rng(reference.seed)
    pipeline = reduced_config(reference)
    model = build_model(pipeline, reference)
    image = load_photo()
    preprocessed, true_image_shapes = model.preprocess(image)
    model.predict(preprocessed, true_image_shapes)  # creates the variables
    n_norms = calibrate_batch_norms(model, preprocessed, true_image_shapes, rng)
    n_biases = randomize_biases(model, rng)
    outputs = run_model(model, image)

    target = output_dir / name
    if target.exists():
        shutil.rmtree(target)
    (target / "checkpoint").mkdir(parents=True)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(target / "checkpoint"), max_to_keep=1
    )
    manager.save(checkpoint_number=0)
    (target / "pipeline.config").write_text(text_format.MessageToString(pipeline))
    listing = tf.train.list_variables(str(target / "checkpoint" / "ckpt-0"))
    reader = tf.train.load_checkpoint(str(target / "checkpoint" / "ckpt-0"))
    dtypes = reader.get_variable_to_dtype_map()
    (target / "variables.txt").write_text(
        "".join(f"{n}\t{dtypes[n].name}\t{list(s)}\n" for n, s in listing)
    )
    check_restore(pipeline, reference, target, image, outputs)
    outputs.update(export_and_run(pipeline, reference, target, image))
    np.savez_compressed(target / "outputs.npz", **outputs)

    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    ckpt_size = sum(p.stat().st_size for p in (target / "checkpoint").iterdir())
    n_params = sum(int(np.prod(v.shape)) for v in model.variables)
    scores = outputs["detections/detection_scores"][0]
    print(
        f"{name}: {n_params} model values, {len(listing)} checkpoint entries, "
        f"{n_norms} batch norms, {n_biases} biases; checkpoint {ckpt_size / 1e6:.2f} MB, "
        f"folder {size / 1e6:.2f} MB; detections {int(outputs['detections/num_detections'][0])}"
        f" scores {scores.max():.4f}..{scores.min():.4f}",
        flush=True,
    )


def check_restore(pipeline, reference, target, image, expected):
    """Rebuild the model from pipeline.config, restore the checkpoint, re-run: same outputs."""
    tf.keras.backend.clear_session()
    model = build_model(pipeline, reference)
    checkpoint = tf.train.Checkpoint(model=model)
    status = checkpoint.restore(str(target / "checkpoint" / "ckpt-0"))
    outputs = run_model(model, image)
    status.assert_existing_objects_matched()
    for key, value in expected.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(outputs[key], value, atol=1e-4, rtol=1e-4, err_msg=key)
        else:
            np.testing.assert_array_equal(outputs[key], value, err_msg=key)


def export_and_run(pipeline, reference, target, image):
    """Export the checkpoint with the TF OD API's `exporter_lib_v2`, run it on the photo.

    The export (`input_type="image_tensor"`, as `exporter_main_v2.py` does by default) goes to a
    temporary folder; its `serving_default` outputs on the photo (uint8) are returned under
    `exported/<key>` (classes 1-based there: the exporter adds the label-id offset), except
    `raw_detection_boxes/scores`.
    """
    tf.keras.backend.clear_session()
    with tempfile.TemporaryDirectory() as tmp:
        with resnet_width(reference.resnet_depth_multiplier):
            exporter_lib_v2.export_inference_graph(
                "image_tensor", pipeline, str(target / "checkpoint"), tmp
            )
        serving = tf.saved_model.load(str(pathlib.Path(tmp) / "saved_model"))
        result = serving.signatures["serving_default"](input_tensor=tf.cast(image, tf.uint8))
        return {
            f"exported/{key}": value.numpy()
            for key, value in result.items()
            if not key.startswith("raw_")  # the same as detections/raw_* (to ~2e-7)
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"references to make (default: all of {list(REFERENCES)})"
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    for name in args.names or REFERENCES:
        # The box classifier is built at the first `predict`, not by `model_builder`.
        with fpn_box_classifier_width(FPN_BOX_CLASSIFIER_UNITS.get(name)):
            make_reference(name, REFERENCES[name], args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
