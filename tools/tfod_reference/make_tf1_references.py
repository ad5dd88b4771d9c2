"""Make small TF1 (slim, graph-mode) TF OD API reference models for kdet's parity tests.

Runs inside the reference venv made by `setup_venv.sh`:

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_tf1_references.py

The sdist's TF1 code runs on TF 2.21 in `tf.compat.v1` graph mode with four stand-ins, set up
by `_run_tf1_code_on_tf2` before `object_detection.builders` is imported (README.md says why):
empty `tensorflow.contrib` modules for the module-level imports of code these models never call,
`numpy.int` (removed in NumPy 1.24), `tf_keras.legacy_tf_layers` (tf_keras 2.21 moved it to
`tf_keras.src.legacy_tf_layers`; TensorFlow's `tf.layers` shims, which tf_slim uses, import it
under the old name) and `tensorflow.python.framework.ops.Tensor` (tf_slim's fused batch norm
reads it).

For each reference in `reference_common.TF1_REFERENCES` it builds the reduced TF1 sample config
with `model_builder.build` in a fresh graph, gives it seeded random weights (gammas, betas and
biases drawn; moving statistics set to the photo's batch statistics layer by layer and perturbed),
and writes into `tests/data/tfod_reference/<name>/`:

- `model.ckpt.index`, `model.ckpt.data-00000-of-00001`, `checkpoint`: a name-based checkpoint of
  every global variable (slim names, `global_step` included) written by `tf.compat.v1.train.Saver`,
  as the TF1 detection-zoo archives hold it (without `model.ckpt.meta`, the graph, ~2 MB);
- `pipeline.config`, `variables.txt` and `outputs.npz` as `make_references.py` describes them;
- where the reference asks for it (`Reference.frozen_graph`), `frozen_inference_graph.pb`: the
  TF1 exporter's frozen graph of the checkpoint (as in the TF1 zoo archives), with its outputs
  on the photo in `outputs.npz` under `frozen/<key>`.
"""

import argparse
import contextlib
import importlib
import os
import pathlib
import shutil
import sys
import tempfile
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

_CONTRIB_MODULES = (
    "tensorflow.contrib",
    "tensorflow.contrib.training",
    "tensorflow.contrib.image",
    "tensorflow.contrib.image.python",
    "tensorflow.contrib.image.python.ops",
    "tensorflow.contrib.image.python.ops.image_ops",
)
_LEGACY_TF_LAYERS = ("", ".base", ".convolutional", ".core", ".normalization", ".pooling")


def _run_tf1_code_on_tf2():
    """Graph mode, plus the four stand-ins the sdist's TF1 code needs on TF 2.21.

    - `tensorflow.contrib` is gone since TF 2.0; `model_builder` imports, in TF1 mode, modules
      that import it at module level (`matchers/bipartite_matcher.py`,
      `nets/nasnet/nasnet.py`, `nets/nasnet/pnasnet.py`) for code the SSD and Faster R-CNN
      ResNet models never run. Empty modules stand in: any use fails with an AttributeError.
    - `nets/mobilenet/mobilenet_v3.py` calls `np.int` at import time (removed in NumPy 1.24).
    - tf_slim's layers use `tensorflow.python.layers`, which import `tf_keras.legacy_tf_layers`;
      tf_keras 2.21 has it as `tf_keras.src.legacy_tf_layers`.
    - tf_slim's `batch_norm` takes its fused path when `updates_collections` is not
      `UPDATE_OPS` (SSD configs with `inplace_batchnorm_update: true`, such as the RetinaNet
      ones), where `utils.constant_value` tests `isinstance(x, ops.Tensor)`; TF 2.21's
      `tensorflow.python.framework.ops` has no `Tensor`: `tf.Tensor` stands in.
    """
    tf.compat.v1.disable_v2_behavior()
    for name in _CONTRIB_MODULES:
        sys.modules[name] = types.ModuleType(name)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, sys.modules[name])
    np.int = int
    for suffix in _LEGACY_TF_LAYERS:
        module = importlib.import_module("tf_keras.src.legacy_tf_layers" + suffix)
        sys.modules["tf_keras.legacy_tf_layers" + suffix] = module
    tf_ops.Tensor = tf.Tensor


_run_tf1_code_on_tf2()

from google.protobuf import text_format
from nets import resnet_utils
from nets import resnet_v1
from object_detection import exporter
from object_detection.builders import model_builder
from object_detection.models import faster_rcnn_resnet_v1_feature_extractor
from reference_common import OUTPUT_DIR
from reference_common import TF1_REFERENCES
from reference_common import Reference
from reference_common import flatten
from reference_common import load_photo
from reference_common import reduced_config

# TF1 references of the SSD FPN models with the weight-shared box predictor (RetinaNet), beside
# those of `reference_common.TF1_REFERENCES`. MobileNetV1 at depth multiplier 0.125: the slim
# body scales its convolutions by it once (the TF2 Keras body twice), and at 0.25 the
# checkpoint is 1.29 MB. ResNet50 as the TF2 `ssd_resnet50_v1_fpn` (slim's bottlenecks
# `max(int(d * 0.0625), min_depth 16)`; its root convolution keeps 64 filters).
TF1_REFERENCES = {
    **TF1_REFERENCES,
    "tf1_ssd_mobilenet_v1_fpn": Reference(
        "ssd_mobilenet_v1_fpn_shared_box_predictor_640x640_coco14_sync.config",
        depth_multiplier=0.125,
        fpn_depth=32,
        head_depth=32,
        seed=13,
    ),
    "tf1_ssd_resnet50_v1_fpn": Reference(
        "ssd_resnet50_v1_fpn_shared_box_predictor_640x640_coco14_sync.config",
        depth_multiplier=0.0625,
        fpn_depth=32,
        head_depth=32,
        image_size=160,  # its extractor refuses images under 129 px
        seed=14,
    ),
    # FPNLite (separable pyramid and predictor; slim `Conv_1` of 256 x the multiplier), from a
    # float copy of the quantized sample config (see `CONFIG_CHANGES`).
    "tf1_ssd_mobilenet_v2_fpnlite": Reference(
        "ssd_mobilenet_v2_fpnlite_quantized_shared_box_predictor_256x256_depthmultiplier_75_"
        "coco14_sync.config",
        depth_multiplier=0.075,  # folder 692 KiB (0.1: 696 KiB, 0.125: 760 KiB)
        fpn_depth=128,  # the config's: max(int(128 * 0.075), min_depth 16) = 16
        head_depth=16,
        seed=15,
    ),
}
# FPNLite's initializer: the config's N(0, 0.01) kernels under batch norms of epsilon 1e-3 leave
# the separable layers' outputs ~1e-5 in variance, so epsilon flattens the activations (feature
# maps ~0.1, logits within 0.1 of their biases) and a parity test would catch little.
_FPNLITE_KERNEL_STDDEV = 0.3


def _fpnlite_float_copy(pipeline):
    """The FPNLite reference's config: its `graph_rewriter` (quantization) dropped, which
    `model_builder` ignores but a reader of the written config would apply, and its kernels
    drawn from N(0, 0.3) (`_FPNLITE_KERNEL_STDDEV`); nothing else of the model changes."""
    pipeline.ClearField("graph_rewriter")
    ssd = pipeline.model.ssd
    for hyperparams in (
        ssd.feature_extractor.conv_hyperparams,
        ssd.box_predictor.weight_shared_convolutional_box_predictor.conv_hyperparams,
    ):
        hyperparams.initializer.random_normal_initializer.stddev = _FPNLITE_KERNEL_STDDEV


# Changes to the reduced config of a reference beyond `reduced_config`'s, by name.
CONFIG_CHANGES = {"tf1_ssd_mobilenet_v2_fpnlite": _fpnlite_float_copy}


@contextlib.contextmanager
def resnet_width(depth_multiplier):
    """Build the TF1 Faster R-CNN ResNet `depth_multiplier` wide (`None`: full width).

    The slim `resnet_v1_50/101` take `depth_multiplier` (bottleneck depth
    `max(int(d * depth_multiplier), 8)`); the extractor's second-stage `block4` (bottleneck 512,
    output 2048) is scaled by the same rule, so its input matches the body's third block.
    """
    if depth_multiplier is None:
        yield
        return
    module = faster_rcnn_resnet_v1_feature_extractor

    def depth(d):
        return max(int(d * depth_multiplier), 8)

    def stack_scaled_blocks(net, blocks, *args, **kwargs):
        scaled = [
            resnet_utils.Block(
                block.scope,
                block.unit_fn,
                [
                    dict(
                        unit,
                        depth=4 * depth(unit["depth_bottleneck"]),
                        depth_bottleneck=depth(unit["depth_bottleneck"]),
                    )
                    for unit in block.args
                ],
            )
            for block in blocks
        ]
        return resnet_utils.stack_blocks_dense(net, scaled, *args, **kwargs)

    def scaled_resnet(builder):
        def build(*args, **kwargs):
            return builder(*args, depth_multiplier=depth_multiplier, **kwargs)

        return build

    resnets = types.SimpleNamespace(**vars(resnet_v1))
    resnets.resnet_v1_50 = scaled_resnet(resnet_v1.resnet_v1_50)
    resnets.resnet_v1_101 = scaled_resnet(resnet_v1.resnet_v1_101)
    utils = types.SimpleNamespace(**vars(resnet_utils))
    utils.stack_blocks_dense = stack_scaled_blocks
    module.resnet_v1, module.resnet_utils = resnets, utils
    try:
        yield
    finally:
        module.resnet_v1, module.resnet_utils = resnet_v1, resnet_utils


def build_graph(pipeline, reference):
    """Build the model in a new graph; returns `(graph, image placeholder, fetches dict)`."""
    graph = tf.Graph()
    with graph.as_default(), resnet_width(reference.resnet_depth_multiplier):
        tf.compat.v1.set_random_seed(reference.seed)
        model = model_builder.build(pipeline.model, is_training=False)
        image = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name="image")
        preprocessed, true_image_shapes = model.preprocess(image)
        prediction = model.predict(preprocessed, true_image_shapes)
        detections = model.postprocess(prediction, true_image_shapes)
        tf.compat.v1.train.get_or_create_global_step()
    fetches = {"true_image_shapes": true_image_shapes}
    if "preprocessed_inputs" not in prediction:
        fetches["predict/preprocessed_inputs"] = preprocessed
    for prefix, values in (("predict", prediction), ("detections", detections)):
        for key, value in values.items():
            fetches[f"{prefix}/{key}"] = value
    fetches = {
        key: value
        for key, value in fetches.items()
        if all(isinstance(t, tf.Tensor) for t in tf.nest.flatten(value))
    }
    return graph, image, fetches


def run(session, image, fetches, photo):
    """Run the fetches on the photo; returns the flat dict saved in outputs.npz."""
    out = {}
    for key, value in session.run(fetches, {image: photo}).items():
        flatten(key, value, out)
    return out


def _variables_by_name(graph):
    with graph.as_default():
        return {v.op.name: v for v in tf.compat.v1.global_variables()}


def calibrate_batch_norms(session, graph, image, photo, rng, iterations=300, tolerance=1e-5):
    """Draw gammas and betas, set moving statistics to the photo's batch statistics, perturb.

    Each fused batch norm's moving mean and variance become the mean and variance of its input
    on the photo; as a layer's input depends on the layers before it, this repeats until no
    statistic `s` moves by more than `tolerance * (1 + |s|)` (about one pass per layer depth;
    the relative part absorbs float rounding of large statistics). Then the mean
    is shifted by N(0, 0.1) standard deviations and the variance scaled by U(0.8, 1.25), as in
    `make_references.calibrate_batch_norms`. Returns the number of batch norms.
    """
    variables = _variables_by_name(graph)
    for name, variable in variables.items():
        if name.endswith("/BatchNorm/gamma"):
            variable.load(rng.uniform(0.4, 0.8, variable.shape), session)
        elif name.endswith("/BatchNorm/beta"):
            variable.load(0.1 * rng.standard_normal(variable.shape), session)
    norms = []
    for op in graph.get_operations():
        if op.type.startswith("FusedBatchNorm"):
            mean, variance = (variables[op.inputs[i].op.inputs[0].op.name] for i in (3, 4))
            norms.append((op.inputs[0], mean, variance))
    if not norms:
        raise ValueError("no fused batch norm found in the graph")
    for _ in range(iterations):
        inputs = session.run([x for x, _, _ in norms], {image: photo})
        change = 0.0
        for value, (_, mean, variance) in zip(inputs, norms):
            axes = tuple(range(value.ndim - 1))
            with np.errstate(all="ignore"):  # layers after a not yet calibrated one overflow
                new_mean = value.astype(np.float64).mean(axis=axes)
                new_variance = value.astype(np.float64).var(axis=axes)
                delta = max(
                    (np.abs(new - old) / (1 + np.abs(old))).max()
                    for new, old in (
                        (new_mean, mean.eval(session)),
                        (new_variance, variance.eval(session)),
                    )
                )
            change = max(change, float(delta) if np.isfinite(delta) else np.inf)
            mean.load(np.nan_to_num(new_mean, posinf=0.0, neginf=0.0), session)
            variance.load(np.nan_to_num(new_variance, nan=1.0, posinf=1.0), session)
        if change <= tolerance:
            break
    else:
        raise RuntimeError(
            f"batch-norm statistics still moved by {change} (relative) after {iterations} passes"
        )
    for _, mean, variance in norms:
        shape = mean.shape
        std = np.sqrt(variance.eval(session))
        mean.load(mean.eval(session) + 0.1 * std * rng.standard_normal(shape), session)
        variance.load(variance.eval(session) * rng.uniform(0.8, 1.25, shape) + 1e-4, session)
    return len(norms)


def randomize_biases(session, graph, rng):
    """Draw every conv / fully-connected bias (slim `.../biases`) from N(0, 0.05)."""
    count = 0
    for name, variable in _variables_by_name(graph).items():
        if name.endswith("/biases"):
            variable.load(0.05 * rng.standard_normal(variable.shape), session)
            count += 1
    return count


def make_reference(name, reference, output_dir):
    """Build, randomize, save and run one TF1 reference model into `output_dir / name`."""
    rng = np.random.default_rng(reference.seed)
    pipeline = reduced_config(reference)
    if name in CONFIG_CHANGES:
        CONFIG_CHANGES[name](pipeline)
    graph, image, fetches = build_graph(pipeline, reference)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        photo = session.run(load_photo())  # photo.png exists: make_references.py made it
    target = output_dir / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    prefix = str(target / "model.ckpt")
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        n_norms = calibrate_batch_norms(session, graph, image, photo, rng)
        n_biases = randomize_biases(session, graph, rng)
        outputs = run(session, image, fetches, photo)
        tf.compat.v1.train.Saver().save(session, prefix, write_meta_graph=False)
        n_values = sum(int(np.prod(v.shape)) for v in tf.compat.v1.global_variables())
    (target / "pipeline.config").write_text(text_format.MessageToString(pipeline))
    listing = tf.train.list_variables(prefix)
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    (target / "variables.txt").write_text(
        "".join(f"{n}\t{dtypes[n].name}\t{list(s)}\n" for n, s in listing)
    )
    check_restore(pipeline, reference, prefix, photo, outputs)
    if reference.frozen_graph:
        outputs.update(export_frozen_graph(pipeline, reference, prefix, target, photo))
    np.savez_compressed(target / "outputs.npz", **outputs)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    ckpt_size = sum(p.stat().st_size for p in target.glob("model.ckpt*"))
    scores = outputs["detections/detection_scores"][0]
    print(
        f"{name}: {n_values} model values, {len(listing)} checkpoint entries, "
        f"{n_norms} batch norms, {n_biases} biases; checkpoint {ckpt_size / 1e6:.2f} MB, "
        f"folder {size / 1e6:.2f} MB; detections {int(outputs['detections/num_detections'][0])}"
        f" scores {scores.max():.4f}..{scores.min():.4f}",
        flush=True,
    )


def check_restore(pipeline, reference, prefix, photo, expected):
    """Rebuild the graph, restore the checkpoint, re-run: the same outputs."""
    graph, image, fetches = build_graph(pipeline, reference)
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.train.Saver().restore(session, prefix)
        outputs = run(session, image, fetches, photo)
    for key, value in expected.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(outputs[key], value, atol=1e-4, rtol=1e-4, err_msg=key)
        else:
            np.testing.assert_array_equal(outputs[key], value, err_msg=key)


# Output tensors of a TF1 exported graph (`exporter.py`), as the TF1 zoo's frozen graphs have them.
_FROZEN_OUTPUTS = (
    "detection_boxes",
    "detection_scores",
    "detection_classes",
    "num_detections",
    "detection_multiclass_scores",
)


def export_frozen_graph(pipeline, reference, prefix, target, photo):
    """Export the checkpoint with the TF1 exporter; keep `frozen_inference_graph.pb`, run it.

    `exporter.export_inference_graph("image_tensor", ...)` as `export_inference_graph.py` runs
    it; its `profile_inference_graph` (parameter statistics printed with `tf.contrib.tfprof`,
    which TF 2 lacks) is skipped. Returns the frozen graph's outputs on the photo (uint8) under
    `frozen/<key>` (classes 1-based there: the exporter adds the label-id offset).
    """
    exporter.profile_inference_graph = lambda graph: None
    with tempfile.TemporaryDirectory() as tmp, tf.Graph().as_default():
        with resnet_width(reference.resnet_depth_multiplier):
            exporter.export_inference_graph("image_tensor", pipeline, prefix, tmp)
        shutil.copy(pathlib.Path(tmp) / "frozen_inference_graph.pb", target)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((target / "frozen_inference_graph.pb").read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        values = session.run(
            {key: f"{key}:0" for key in _FROZEN_OUTPUTS},
            {"image_tensor:0": photo.astype(np.uint8)},
        )
    return {f"frozen/{key}": value for key, value in values.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"references to make (default: all of {list(TF1_REFERENCES)})"
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    for name in args.names or TF1_REFERENCES:
        make_reference(name, TF1_REFERENCES[name], args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
