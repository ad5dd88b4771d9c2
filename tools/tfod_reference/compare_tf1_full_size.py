"""Restore a `make_tf1_full_size_checkpoint.py` folder in kdet and compare with the TF OD API.

Runs in kdet's python (not the reference venv):

    python tools/tfod_reference/compare_tf1_full_size.py /tmp/rfcn_full

Prints the restore (`TFODRestore`: weights restored, checkpoint variables left unread), the
largest differences of the raw outputs (RPN, proposals, class logits, box encodings, the
second stage again at the TF OD API's proposals and, for Mask R-CNN, the mask logits at its
detection boxes), how many of the TF OD API's
detections kdet has (same class, IoU >= 0.99, score within 1e-3; masks compared on those),
and the peak RSS.
"""

import argparse
import pathlib
import resource
import time

import numpy as np
from PIL import Image

import kdet
from kdet.models.faster_rcnn import MaskRCNN

PHOTO = pathlib.Path(__file__).resolve().parents[2] / "tests/data/tfod_reference/photo.png"


def iou(a, b):
    top_left = np.maximum(a[:2], b[:2])
    bottom_right = np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None))
    return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def difference(ours, theirs):
    """`(max abs difference, largest |value|)`."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    return float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())


def compare(folder):
    start = time.time()
    model, restore = kdet.checkpoints.load_tfod_model(
        folder / "pipeline.config", folder / "model.ckpt"
    )
    print(restore)
    print(
        f"restored {len(restore.restored)} of {len(model.weights)} kdet weights "
        f"({sum(int(np.prod(w.shape)) for w in model.weights)} values); "
        f"{len(restore.not_restored)} not restored; {len(restore.unused)} checkpoint "
        f"variables unread ({sorted({k.rsplit('/unit_', 1)[0] for k in restore.unused})}); "
        f"{len(restore.ignored)} ignored; load {time.time() - start:.0f} s"
    )
    expected = dict(np.load(folder / "outputs.npz"))
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))[None].astype(np.float32)
    outputs = model(photo, training=False)
    count = int(expected["predict/num_proposals"][0])
    rows = [
        ("rpn_box_encodings", outputs["rpn_box_encodings"], expected["predict/rpn_box_encodings"]),
        (
            "rpn_objectness",
            outputs["rpn_objectness_logits"],
            expected["predict/rpn_objectness_predictions_with_background"],
        ),
        (
            "proposals",
            outputs["proposals"][0, :count],
            expected["predict/proposal_boxes_normalized"][0, :count],
        ),
        (
            "class_logits",
            outputs["class_logits"][0, :count],
            expected["predict/class_predictions_with_background"][:count],
        ),
        (
            "box_encodings",
            outputs["box_encodings"][0, :count],
            np.broadcast_to(
                expected["predict/refined_box_encodings"][:count],
                outputs["box_encodings"][0, :count].shape,
            ),
        ),
    ]
    # The second stage on the TF OD API's own proposals (random RPN weights give near-tied
    # objectness scores, whose order float noise can swap).
    second = second_stage_on(model, expected, count)
    rows += [
        ("class_logits at its proposals", second["class_logits"],
         expected["predict/class_predictions_with_background"][:count]),
        ("box_encodings at its proposals", second["box_encodings"],
         np.broadcast_to(expected["predict/refined_box_encodings"][:count],
                         second["box_encodings"].shape)),
    ]
    if isinstance(model, MaskRCNN):
        rows.append(("mask_logits", *mask_logits(model, expected)))
    for name, ours, theirs in rows:
        print(f"  {name}: max |difference| {difference(ours, theirs)[0]:.2e} "
              f"(values up to {difference(ours, theirs)[1]:.3g})")
    ours = np.asarray(outputs["proposals"][0, :count])
    theirs = expected["predict/proposal_boxes_normalized"][0, :count]
    same = sum(any(iou(box, other) >= 0.99 for other in ours) for box in theirs)
    print(f"  proposals: {same} of the TF OD API's {count} among kdet's (IoU >= 0.99)")
    detections = model.detect(photo)
    matched, mask_error = matched_detections(detections, expected, photo.shape[1:3])
    total = int(expected["detections/num_detections"][0])
    print(f"  detections: {matched} of the TF OD API's {total} found in kdet's "
          f"{int(detections['num_detections'][0])}"
          + (f"; box masks max |difference| {mask_error:.2e}" if mask_error is not None else ""))
    print(f"  {time.time() - start:.0f} s, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


def second_stage_on(model, expected, count):
    """kdet's second stage (class logits, box encodings) at the TF OD API's proposals, on its
    preprocessed photo."""
    frame = tuple(expected["predict/image_shape"][1:3])
    features = model.feature_extractor.extract_proposal_features(
        expected["predict/preprocessed_inputs"]
    )
    proposals = expected["predict/proposal_boxes_normalized"][:, :count]
    return model._second_stage({"features": [features], "image_size": frame}, proposals, False)


def mask_logits(model, expected):
    """kdet's mask logits at the TF OD API's detection boxes, and the TF OD API's."""
    frame = expected["predict/image_shape"][1:3]
    true_height, true_width = expected["true_image_shapes"][0, :2]
    scale = np.array([true_height, true_width] * 2) / np.array([*frame, *frame])
    boxes = expected["predict/detection_boxes"] * scale
    features = model.feature_extractor.extract_proposal_features(
        expected["predict/preprocessed_inputs"]
    )
    crops = model.roi_heads.crop([features], boxes, tuple(frame))
    logits = model.mask_head(model.feature_extractor.extract_box_classifier_features(crops))
    return logits, expected["predict/mask_predictions"]


def matched_detections(detections, expected, image_shape):
    """How many TF OD API detections kdet has (class, IoU >= 0.99, score within 1e-3), and
    the largest box-mask difference over them (None without masks)."""
    height, width = image_shape
    count = int(detections["num_detections"][0])
    boxes = np.asarray(detections["boxes"][0, :count]) / [height, width, height, width]
    scores = np.asarray(detections["confidences"][0, :count])
    labels = np.asarray(detections["labels"][0, :count]) - 1
    masks = detections.get("box_masks")
    matched, mask_error = 0, None
    total = int(expected["detections/num_detections"][0])
    for index in range(total):
        box = expected["detections/detection_boxes"][0, index]
        same = [
            i for i in range(count)
            if labels[i] == expected["detections/detection_classes"][0, index]
            and abs(scores[i] - expected["detections/detection_scores"][0, index]) <= 1e-3
            and iou(boxes[i], box) >= 0.99
        ]
        matched += bool(same)
        if same and masks is not None:
            error = min(
                float(np.abs(np.asarray(masks[0, i])
                             - expected["detections/detection_masks"][0, index]).max())
                for i in same
            )
            mask_error = max(mask_error or 0.0, error)
    return matched, mask_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=pathlib.Path)
    compare(parser.parse_args(argv).folder)


if __name__ == "__main__":
    main()
