"""Parity of kdet's `faster_rcnn_inception_resnet_v2_keras` with the TF OD API's TF2 model, on a
TF2 checkpoint the TF OD API wrote (220 MB: too large to commit, so this runs here, not in CI).

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_inception_resnet_v2_references.py \
        --tf2 /tmp/irv2_tf2
    python tools/tfod_reference/check_inception_resnet_v2_tf2.py /tmp/irv2_tf2

The second command (kdet's python) builds kdet's model from the reference's `pipeline.config`,
restores `checkpoint/ckpt-0` with `kdet.checkpoints.load_tfod_model` (every variable used) and
prints the largest differences from the TF OD API's outputs on the reference photo: first-stage
features, RPN outputs, proposals, second-stage features of the same crops, class logits, box
encodings, detections.
"""

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from tfod_references import assert_faster_rcnn_outputs_match
from tfod_references import assert_same_detections
from tfod_references import photo

from kdet.checkpoints import load_tfod_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=pathlib.Path)
    args = parser.parse_args()
    model, restore = load_tfod_model(
        args.reference / "pipeline.config", args.reference / "checkpoint"
    )
    print(restore)
    assert not restore.not_restored, restore.not_restored[:5]
    expected = dict(np.load(args.reference / "outputs.npz"))
    image = photo()
    outputs = model(image[None], training=False)
    preprocessed = expected["predict/preprocessed_inputs"]
    height, width = preprocessed.shape[1:3]
    extractor = model.feature_extractor
    features = extractor.extract_proposal_features(preprocessed)
    crops = model.roi_heads.crop([features], outputs["proposals"], (height, width))
    count = int(expected["predict/num_proposals"][0])
    differences = {
        "first-stage features": (features, expected["predict/rpn_features_to_crop/0"]),
        "RPN box encodings": (outputs["rpn_box_encodings"], expected["predict/rpn_box_encodings"]),
        "RPN objectness": (
            outputs["rpn_objectness_logits"],
            expected["predict/rpn_objectness_predictions_with_background"],
        ),
        "box classifier features": (
            extractor.extract_box_classifier_features(crops)[:count],
            expected["predict/box_classifier_features"][:count],
        ),
        "class logits": (
            outputs["class_logits"][0, :count],
            expected["predict/class_predictions_with_background"][:count],
        ),
        "box encodings": (
            outputs["box_encodings"][0, :count],
            expected["predict/refined_box_encodings"][:count],
        ),
    }
    for name, (ours, theirs) in differences.items():
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        print(
            f"{name} {theirs.shape}: largest difference {np.abs(ours - theirs).max():.2e} "
            f"(values up to {np.abs(theirs).max():.2f})"
        )
    assert_faster_rcnn_outputs_match(model, outputs, expected, (height, width))
    assert_same_detections(model.predict_on_batch(image[None]), expected, image.shape)
    print("TF2 parity: raw outputs within 1e-3, detections the same")


if __name__ == "__main__":
    main()
