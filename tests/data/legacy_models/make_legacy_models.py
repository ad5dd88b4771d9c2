"""Writes the Faster R-CNN files of `tests/data/legacy_models/` (see its README).

Run from the repository root: `python tests/data/legacy_models/make_legacy_models.py`. It was
run once, with the code of the commit the README names, to freeze how kdet then stored a
Faster R-CNN; re-running it with later code writes files of the later format.
"""

import pathlib
import sys

import keras
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

import tiny_two_stage_extractor

import kdet

HERE = pathlib.Path(__file__).resolve().parent
IMAGE_SIZE = 64


def tiny_faster_rcnn():
    """A single-map Faster R-CNN: the test extractor (stride 8), crop-and-resize RoIs."""
    return kdet.FasterRCNN(
        num_classes=3,
        feature_extractor=tiny_two_stage_extractor.ConfigTestTinyTwoStageExtractor(
            first_stage_features_stride=8
        ),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_anchor_generator=kdet.layers.GridAnchorGenerator(
            scales=(0.5, 1.0), aspect_ratios=(0.5, 1.0, 2.0), base_anchor_size=(32, 32),
            anchor_stride=(8, 8),
        ),
        first_stage_box_predictor_depth=16,
        first_stage_max_proposals=20,
        initial_crop_size=6,
        second_stage_non_max_suppression=kdet.layers.MultiClassNonMaxSuppression(
            score_converter="softmax", max_detections_per_class=10, max_detections=10
        ),
    )


def tiny_fpn_faster_rcnn():
    """An FPN Faster R-CNN: the test FPN extractor (levels 3, 4), multiscale anchors,
    multilevel RoIAlign."""
    return kdet.FasterRCNN(
        num_classes=2,
        feature_extractor=tiny_two_stage_extractor.ConfigTestTinyFPNExtractor(),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_box_predictor_depth=16,
        first_stage_max_proposals=20,
        roi_align_crop_size=4,
        second_stage_box_predictor=kdet.models.faster_rcnn.BoxClassifierHead(
            2, share_box_across_classes=True
        ),
        second_stage_non_max_suppression=kdet.layers.MultiClassNonMaxSuppression(
            score_converter="softmax", max_detections_per_class=10, max_detections=10
        ),
    )


def fixed_images():
    """The input both files' expected predictions are of: 2 images, uint8 values."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("uint8")


def _randomized(model):
    """Builds `model` and gives every weight a random value, so that each weight changes the
    predictions (freshly initialized heads predict near-constant outputs)."""
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    rng = np.random.default_rng(0)
    for weight in model.weights:
        value = rng.normal(0.0, 0.3, size=weight.shape)
        if weight.name in ("moving_variance", "gamma"):
            value = 0.5 + np.abs(value)
        weight.assign(value.astype(weight.dtype))
    return model


def main():
    keras.utils.set_random_seed(0)
    images = fixed_images()
    for name, build in (("faster_rcnn", tiny_faster_rcnn), ("faster_rcnn_fpn",
                                                             tiny_fpn_faster_rcnn)):
        model = _randomized(build())
        model.save(HERE / f"{name}.keras")
        model.save_weights(HERE / f"{name}.weights.h5")
        raw = model(images.astype("float32"))
        detections = model.predict(images, verbose=0)
        np.savez(
            HERE / f"{name}.expected.npz",
            images=images,
            **{f"raw_{key}": np.asarray(raw[key]) for key in ("proposals", "class_logits",
                                                              "box_encodings")},
            **{f"detections_{key}": np.asarray(value) for key, value in detections.items()},
        )


if __name__ == "__main__":
    main()
