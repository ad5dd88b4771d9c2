"""Make the TF OD API reference of the TF1 Faster R-CNN Inception-ResNet-v2 (atrous) for kdet's
parity test, without committing its 220 MB checkpoint.

Runs inside the reference venv made by `setup_venv.sh`:

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_inception_resnet_v2_references.py

The TF OD API has no width multiplier for Inception-ResNet-v2, so the model is the full one
(55M values). Instead of a checkpoint, every variable gets `seeded_value(name, shape, SEED)`
(`tests/seeded_tfod_checkpoint.py`: values drawn from the variable's name), and the folder
`tests/data/tfod_reference/tf1_faster_rcnn_inception_resnet_v2/` holds
- `pipeline.config`: `samples/faster_rcnn_inception_resnet_v2_atrous_coco.config` (from
  `../shared/tfod_configs/`) reduced: 3 classes, the photo resized to 64 px (43x64), 4
  proposals, at most 20 detections; the body, stride 8, atrous rate 2, crops are the config's;
- `variables.txt`: `name<TAB>dtype<TAB>shape` of every variable, as in a TF1 checkpoint of the
  model (`global_step` left out);
- `outputs.npz`: the TF OD API's `preprocess` → `predict` → `postprocess` on the photo with
  those values (as `make_tf1_references.py`), the first-stage features once
  (`predict/feature_maps/0`, 6x8x1088) and without the box classifier's features (4x8x8x1536,
  1.5 MB; the class logits and box encodings computed from them are there) and the RPN's
  512-channel map.

The test writes the checkpoint again from `variables.txt` and the seed, restores it into kdet's
model with `kdet.checkpoints.restore_tfod_checkpoint` and compares. Here the values are checked
to survive a real `tf.compat.v1.train.Saver` round trip of the TF OD API's graph.

With `--tf2 DIR` it makes instead, into DIR, a TF2 reference of `faster_rcnn_inception_resnet_v2
_keras` (`tf2_config`) with a real TF2 checkpoint (220 MB, not committed), for
`check_inception_resnet_v2_tf2.py` to compare with kdet here (measured 2026-12-05: 906 weights
restored, first-stage features and RPN outputs identical, box classifier features within
1.5e-5, class logits 1.3e-6, box encodings 8.9e-7, the same detections).
"""

import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from object_detection.protos import pipeline_pb2
from reference_common import NUM_CLASSES
from reference_common import OUTPUT_DIR
from reference_common import REPO
from reference_common import Reference
from reference_common import load_photo

sys.path.insert(0, str(REPO / "tests"))
from seeded_tfod_checkpoint import seeded_value

NAME = "tf1_faster_rcnn_inception_resnet_v2"
SAMPLE_CONFIG = "faster_rcnn_inception_resnet_v2_atrous_coco.config"
SAMPLES = REPO.parent / "shared" / "tfod_configs" / "samples"
SEED = 21
IMAGE_SIZE = 64
MAX_PROPOSALS = 4
# Outputs too large to commit (kdet's test checks what is computed from them).
LARGE_OUTPUTS = (
    "predict/rpn_features_to_crop/0",
    "predict/rpn_box_predictor_features/0",
    "predict/box_classifier_features",
)


def reduced_config():
    """The sample config, reduced (see the module docstring)."""
    pipeline = pipeline_pb2.TrainEvalPipelineConfig()
    text_format.Merge((SAMPLES / SAMPLE_CONFIG).read_text(), pipeline)
    model = pipeline.model.faster_rcnn
    model.num_classes = NUM_CLASSES
    resizer = model.image_resizer.keep_aspect_ratio_resizer
    resizer.min_dimension = resizer.max_dimension = IMAGE_SIZE
    model.first_stage_max_proposals = MAX_PROPOSALS
    model.second_stage_batch_size = MAX_PROPOSALS
    nms = model.second_stage_post_processing.batch_non_max_suppression
    nms.max_detections_per_class = 10
    nms.max_total_detections = 20
    return pipeline


def load_seeded_values(session, graph):
    """Loads `seeded_value` into every global variable but the step; returns `[(name,
    dtype, shape)]` of them."""
    entries = []
    with graph.as_default():
        for variable in tf.compat.v1.global_variables():
            name = variable.op.name
            if name == "global_step":
                continue
            shape = variable.shape.as_list()
            variable.load(seeded_value(name, shape, SEED), session)
            entries.append((name, variable.dtype.base_dtype.name, shape))
    return sorted(entries)


def make_tf1_reference():
    """The committed TF1 reference (see the module docstring)."""
    # Sets up the TF OD API's TF1 code on TF 2.21 (graph mode and stand-ins) when imported.
    import make_tf1_references

    pipeline = reduced_config()
    reference = Reference(SAMPLE_CONFIG, seed=SEED)
    graph, image, fetches = make_tf1_references.build_graph(pipeline, reference)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        photo = session.run(load_photo())
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        entries = load_seeded_values(session, graph)
        outputs = make_tf1_references.run(session, image, fetches, photo)
        with tempfile.TemporaryDirectory() as tmp:
            prefix = str(pathlib.Path(tmp) / "model.ckpt")
            tf.compat.v1.train.Saver().save(session, prefix, write_meta_graph=False)
            make_tf1_references.check_restore(pipeline, reference, prefix, photo, outputs)
    target = OUTPUT_DIR / NAME
    target.mkdir(parents=True, exist_ok=True)
    (target / "pipeline.config").write_text(text_format.MessageToString(pipeline))
    (target / "variables.txt").write_text(
        "".join(f"{name}\t{dtype}\t{shape}\n" for name, dtype, shape in entries)
    )
    kept = {key: value for key, value in outputs.items() if key not in LARGE_OUTPUTS}
    np.savez_compressed(target / "outputs.npz", **kept)
    features = outputs["predict/rpn_features_to_crop/0"]
    scores = outputs["detections/detection_scores"][0]
    size = sum(path.stat().st_size for path in target.iterdir())
    print(
        f"{NAME}: {len(entries)} variables, "
        f"{sum(int(np.prod(shape)) for _, _, shape in entries)} values; first-stage features "
        f"{features.shape} mean |x| {np.abs(features).mean():.3f} max {np.abs(features).max():.3f}"
        f"; class logits std {outputs['predict/class_predictions_with_background'].std():.3f}; "
        f"scores {scores.max():.4f}..{scores.min():.4f}; folder {size / 1e3:.0f} KB"
    )


def tf2_config():
    """The TF2 counterpart of `reduced_config`: `faster_rcnn_inception_resnet_v2_keras` at
    stride 16 (the TF OD API's TF2 extractor fails at 8), no atrous RPN, 128 px."""
    pipeline = reduced_config()
    model = pipeline.model.faster_rcnn
    model.feature_extractor.type = "faster_rcnn_inception_resnet_v2_keras"
    model.feature_extractor.first_stage_features_stride = 16
    model.first_stage_anchor_generator.grid_anchor_generator.height_stride = 16
    model.first_stage_anchor_generator.grid_anchor_generator.width_stride = 16
    model.first_stage_atrous_rate = 1
    resizer = model.image_resizer.keep_aspect_ratio_resizer
    resizer.min_dimension = resizer.max_dimension = 2 * IMAGE_SIZE
    return pipeline


def make_tf2_reference(output_dir):
    """A TF2 reference into `output_dir` (not committed: its checkpoint is 220 MB):
    `checkpoint/ckpt-0` of `tf.train.Checkpoint(model=...)`, `pipeline.config`, `outputs.npz`,
    as `make_references.py` makes them (batch norms calibrated on the photo, biases drawn)."""
    import make_references

    tf.keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    pipeline = tf2_config()
    model = make_references.model_builder.build(pipeline.model, is_training=False)
    image = load_photo()
    preprocessed, true_image_shapes = model.preprocess(image)
    model.predict(preprocessed, true_image_shapes)  # creates the variables
    make_references.calibrate_batch_norms(model, preprocessed, true_image_shapes, rng)
    make_references.randomize_biases(model, rng)
    outputs = make_references.run_model(model, image)
    output_dir.mkdir(parents=True, exist_ok=True)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(output_dir / "checkpoint"), max_to_keep=1
    ).save(checkpoint_number=0)
    (output_dir / "pipeline.config").write_text(text_format.MessageToString(pipeline))
    np.savez_compressed(output_dir / "outputs.npz", **outputs)
    scores = outputs["detections/detection_scores"][0]
    print(f"TF2 reference in {output_dir}: scores {scores.max():.4f}..{scores.min():.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tf2",
        type=pathlib.Path,
        metavar="DIR",
        help="make the TF2 (_keras) reference into DIR instead, for "
        "check_inception_resnet_v2_tf2.py (run with kdet's python)",
    )
    args = parser.parse_args()
    if args.tf2:
        make_tf2_reference(args.tf2)
    else:
        make_tf1_reference()


if __name__ == "__main__":
    main()
