"""TF2 classification checkpoints of reference backbones, as the TF OD API's TF2 fine-tuning reads
them.

With `fine_tune_checkpoint_type: "classification"`, `model_lib_v2` restores
`tf.train.Checkpoint(**model.restore_from_objects("classification"))`, which for SSD and
Faster R-CNN is `{"feature_extractor": <the Keras classification backbone>}`: a checkpoint whose
object graph has that backbone (`layer_with_weights-N`, its Keras layers with weights in order)
under `feature_extractor`. This script restores a committed reference's detection checkpoint
into the TF OD API model, writes its backbone that way to `<reference>/classification/ckpt-0`,
and checks the TF OD API's own classification restore takes every backbone variable from it.

Usage (reference venv): TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
    tools/tfod_reference/make_classification_checkpoints.py [NAME ...]
"""

import argparse
import pathlib
import shutil
import sys

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from make_references import OUTPUT_DIR
from make_references import build_model
from make_references import load_photo
from object_detection.protos import pipeline_pb2
from reference_common import REFERENCES

# The references written with a classification checkpoint (the split-body Faster R-CNN: its
# TF2 classification backbone is the whole ResNet, which kdet holds as two models).
CLASSIFICATION = ["faster_rcnn_resnet50"]


def _model(folder, reference):
    pipeline = text_format.Parse(
        (folder / "pipeline.config").read_text(), pipeline_pb2.TrainEvalPipelineConfig()
    )
    tf.keras.backend.clear_session()
    model = build_model(pipeline, reference)
    preprocessed, shapes = model.preprocess(load_photo())
    model.predict(preprocessed, shapes)  # creates the variables
    return model


def make(name, output_dir):
    folder = output_dir / name
    model = _model(folder, REFERENCES[name])
    tf.train.Checkpoint(model=model).restore(str(folder / "checkpoint" / "ckpt-0")).assert_consumed()
    backbone = model._feature_extractor.classification_backbone
    target = folder / "classification"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    tf.train.CheckpointManager(
        tf.train.Checkpoint(feature_extractor=backbone), str(target), max_to_keep=1
    ).save(checkpoint_number=0)
    # The TF OD API's own classification restore, into a fresh model.
    fresh = _model(folder, REFERENCES[name])
    status = tf.train.Checkpoint(**fresh.restore_from_objects("classification")).restore(
        str(target / "ckpt-0")
    )
    status.assert_existing_objects_matched()
    restored = fresh._feature_extractor.classification_backbone.weights
    assert len(restored) == len(backbone.weights)
    for ours, theirs in zip(restored, backbone.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"{name}: {len(backbone.weights)} backbone variables, {size / 1e6:.2f} MB", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"default: {CLASSIFICATION}")
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    for name in args.names or CLASSIFICATION:
        make(name, args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
