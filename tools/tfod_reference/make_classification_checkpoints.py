"""TF2 classification checkpoints of reference backbones, as the TF OD API's TF2 fine-tuning reads
them.

With `fine_tune_checkpoint_type: "classification"`, `model_lib_v2` restores
`tf.train.Checkpoint(**model.restore_from_objects("classification"))`, which for SSD and
Faster R-CNN is `{"feature_extractor": <the Keras classification backbone>}`: a checkpoint whose
object graph has that backbone (`layer_with_weights-N`, its Keras layers with weights in order)
under `feature_extractor`. This script restores a committed reference's detection checkpoint
into the TF OD API model, writes its backbone that way to `<reference>/classification/ckpt-0`,
and checks the TF OD API's own classification restore takes every backbone variable from it.

EfficientDet (`EFFICIENTDET`): its configs name a classification checkpoint of the whole
EfficientNet classifier, which a user has from elsewhere (the TF2 classification zoo, a
classifier trained with the Model Garden's `efficientnet_model`, converted as the TF OD API's
`convert_keras_models.py` converts Keras models: `tf.train.Checkpoint(feature_extractor=
model)`). So the script builds that classifier with the Model Garden's own
`EfficientNet.from_name` (at the reference's width, `CLASSIFIER_CLASSES` classes, the
classifier's default input rescaling), randomizes it (batch norms calibrated on the photo as
`make_references.py` does, biases drawn), writes it to `<reference>/classification/ckpt-0`,
restores it into the TF OD API's EfficientDet of the reduced config as `model_lib_v2.
load_fine_tune_checkpoint` does (what `model_main_tf2.py` runs), checks every variable of the
extractor's `classification_backbone` took the checkpoint's value, and saves the body maps the
detector computes from it (`_efficientnet` on the extractor's `preprocess` of the photo) to
`<reference>/outputs.npz` as `backbone/<i>`, with the reduced `pipeline.config`. It prints which
restored layers detection never reads: from B1 up the last stage's further blocks, then the
top convolution, its batch norm and the classifier.

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
from make_efficientdet_references import CLASSIFIER_CLASSES
from make_efficientdet_references import IMAGE_SIZE
from make_efficientdet_references import allow_efficientnet_width
from make_efficientdet_references import efficientdet_config
from make_efficientdet_references import efficientnet_model
from make_references import OUTPUT_DIR
from make_references import build_model
from make_references import calibrate_batch_norms
from make_references import load_photo
from make_references import randomize_biases
from object_detection.protos import pipeline_pb2
from reference_common import REFERENCES
from reference_common import Reference

# The references written with a classification checkpoint (the split-body Faster R-CNN: its
# TF2 classification backbone is the whole ResNet, which kdet holds as two models).
CLASSIFICATION = ["faster_rcnn_resnet50"]
# EfficientDets whose EfficientNet comes from a classification checkpoint (see above): D1, whose
# B1 has a block after the body's last level (`stack_6/block_1`), at width 0.075 (85 k values).
EFFICIENTDET = {
    "ssd_efficientdet_d1": Reference(
        "ssd_efficientdet_d1_640x640_coco17_tpu-8.config",
        depth_multiplier=0.075,
        head_depth=16,
        image_size=IMAGE_SIZE,
        seed=41,
    ),
}


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


def _layers_with_weights(model):
    return [layer for layer in model.layers if layer.weights]


def _classifier(version, depth_multiplier, image, rng):
    """The Model Garden's EfficientNet classifier `version` at `depth_multiplier` times its
    width, randomized: batch norms calibrated on `image` (0..255), biases drawn."""
    config = efficientnet_model.MODEL_CONFIGS[version]
    classifier = efficientnet_model.EfficientNet.from_name(
        version,
        overrides={
            "width_coefficient": config.width_coefficient * depth_multiplier,
            "num_classes": CLASSIFIER_CLASSES,
        },
    )

    class Wrapper:  # `calibrate_batch_norms` runs a detection model's `predict`
        submodules = classifier.submodules

        @staticmethod
        def predict(images, _):
            return classifier(images, training=True)

    calibrate_batch_norms(Wrapper, image, None, rng)
    randomize_biases(classifier, rng)
    return classifier


def make_efficientdet(name, reference, output_dir):
    """The classification checkpoint, the TF OD API's restore of it and its body maps (see the
    module docstring), in `output_dir / name`."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(reference.seed)
    rng = np.random.default_rng(reference.seed)
    pipeline = efficientdet_config(reference)
    image = load_photo()
    detector = build_model(pipeline, reference)
    extractor = detector._feature_extractor
    classifier = _classifier(
        extractor._efficientnet_version, reference.depth_multiplier, image, rng
    )
    target = output_dir / name
    if target.exists():
        shutil.rmtree(target)
    (target / "classification").mkdir(parents=True)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(feature_extractor=classifier),
        str(target / "classification"),
        max_to_keep=1,
    ).save(checkpoint_number=0)
    (target / "pipeline.config").write_text(text_format.MessageToString(pipeline))

    preprocessed, shapes = detector.preprocess(image)
    detector.predict(preprocessed, shapes)  # creates the variables
    # `model_lib_v2.load_fine_tune_checkpoint`'s restore (that module needs `lvis` to import).
    tf.train.Checkpoint(**detector.restore_from_objects("classification")).restore(
        str(target / "classification" / "ckpt-0")
    ).expect_partial().assert_existing_objects_matched()
    backbone = extractor.classification_backbone
    assert len(backbone.weights) == len(classifier.weights)
    for theirs, saved in zip(backbone.weights, classifier.weights):
        np.testing.assert_array_equal(theirs.numpy(), saved.numpy(), err_msg=theirs.name)
    # The detector computes with `_efficientnet`: the classification model's first layers.
    restored = _layers_with_weights(backbone)
    read = _layers_with_weights(extractor._efficientnet)
    assert all(a is b for a, b in zip(read, restored))
    unread = restored[len(read):]
    maps = extractor._efficientnet(extractor.preprocess(image))
    np.savez_compressed(
        target / "outputs.npz",
        **{f"backbone/{index}": value.numpy() for index, value in enumerate(maps)},
    )
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(
        f"{name}: the TF OD API restored {len(backbone.weights)} variables of "
        f"{len(restored)} layers into its classification_backbone; detection reads the first "
        f"{len(read)} layers; never read: {len(unread)} layers "
        f"({', '.join(layer.name for layer in unread)}); body maps "
        f"{[tuple(m.shape) for m in maps]}; folder {size / 1e6:.2f} MB",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"default: {CLASSIFICATION + list(EFFICIENTDET)}"
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    allow_efficientnet_width()
    for name in args.names or CLASSIFICATION + list(EFFICIENTDET):
        if name in EFFICIENTDET:
            make_efficientdet(name, EFFICIENTDET[name], args.output_dir)
        else:
            make(name, args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
