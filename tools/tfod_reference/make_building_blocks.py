"""Run the TF OD API's own building blocks on seeded inputs, for kdet's block-by-block parity test.

Runs inside the reference venv made by `setup_venv.sh` (the TF OD API's own code, never kdet's):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python tools/tfod_reference/make_building_blocks.py

and writes `tests/data/tfod_reference/building_blocks.npz`, read by
`tests/checkpoints/test_tfod_building_blocks.py`. Keys are `<block>/<case>/<array>`:

- `anchors/<case>/`: `config` (an `AnchorGenerator` message, text format), `feature_map_shapes`
  `[L, 2]`, `image_shape` `[2]`, and `anchors/<i>` per feature map: the TF OD API's
  `anchor_generator_builder.build(config).generate(...)` boxes (`grid_anchor_generator` in pixels,
  the others normalized);
- `box_coder/<case>/`: `scale_factors` (`[4]`, or `[0]` for none), `anchors`, `boxes` and their
  `encoded` codes, `codes` and their `decoded` boxes (`FasterRcnnBoxCoder.encode` / `decode`);
- `matcher/<case>/`: `config` (a `Matcher` message), `similarity` `[num_gt, num_anchors]`,
  `match` (`matcher_builder.build(config).match(similarity).match_results`, every row valid) and
  `match_with_invalid_row` (the same with `valid_rows`, where row 3 is invalid);
- `target_assigner/<case>/`: `config` (a `Matcher` message), `scale_factors`, `anchors`,
  `gt_boxes` (the last row is zero padding, weight 0, as in the TF OD API's static-shape
  inputs), `gt_labels` (1-based), `gt_weights`, and the outputs of the TF OD API's
  `TargetAssigner(IouSimilarity(), matcher, coder).assign(...)` with one-hot labels (background
  column first): `cls_targets` (as the 0..num_classes class index), `cls_weights`, `reg_targets`,
  `reg_weights`, `match`;
- `nms/<case>/`: `config` (a `PostProcessing` message), `boxes` `[B, N, q, 4]`, `scores`
  `[B, N, C]`, `clip_window` `[4]` (or `[0]`: none passed, nor `change_coordinate_frame`), and
  the outputs of `post_processing_builder.build(config)`'s
  `batch_multiclass_non_max_suppression`: `nmsed_boxes`, `nmsed_scores`, `nmsed_classes`
  (0-based), `num_detections`;
- `score_converter/<case>/`: `config`, `logits` and the builder's score converter's `scores`;
- `resizer/<case>/`: `config` (an `ImageResizer` message) and the `image_resizer_builder.build(
  config)` output on `photo.png` (`preprocessor.resize_to_range` / `resize_image`):
  `resized` `[h, w, 3]` and `true_image_shape` `[3]`;
- `resize_to_range/sizes`: rows `(height, width, min_dimension, max_dimension, out_height,
  out_width)` of `preprocessor.resize_to_range` on blank images of many sizes (sizes only).

Everything is seeded (`numpy.random.default_rng(SEED)`); TF OD API functions run eagerly.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from object_detection.box_coders import faster_rcnn_box_coder
from object_detection.builders import anchor_generator_builder
from object_detection.builders import image_resizer_builder
from object_detection.builders import matcher_builder
from object_detection.builders import post_processing_builder
from object_detection.core import box_list
from object_detection.core import preprocessor
from object_detection.core import region_similarity_calculator
from object_detection.core import target_assigner
from object_detection.protos import anchor_generator_pb2
from object_detection.protos import image_resizer_pb2
from object_detection.protos import matcher_pb2
from object_detection.protos import post_processing_pb2
from reference_common import OUTPUT_DIR
from reference_common import load_photo

OUTPUT = OUTPUT_DIR / "building_blocks.npz"
SEED = 16
SCALED = (10.0, 10.0, 5.0, 5.0)

# name: (AnchorGenerator text, feature map shapes, (image height, image width))
ANCHOR_CASES = {
    "grid_faster_rcnn": (
        (
            "grid_anchor_generator { height_stride: 16 width_stride: 16 "
            "scales: [0.25, 0.5, 1.0, 2.0] aspect_ratios: [0.5, 1.0, 2.0] }"
        ),
        [(5, 8)],
        (80, 128),
    ),
    "grid_sizes_and_offsets": (
        (
            "grid_anchor_generator { height: 128 width: 96 height_stride: 8 width_stride: 12 "
            "height_offset: 4 width_offset: 6 scales: [0.5, 1.0] aspect_ratios: [1.0, 3.0] }"
        ),
        [(6, 7)],
        (48, 84),
    ),
    "ssd_mobilenet_v2": (
        (
            "ssd_anchor_generator { num_layers: 6 min_scale: 0.2 max_scale: 0.95 "
            "aspect_ratios: [1.0, 2.0, 0.5, 3.0, 0.3333] }"
        ),
        [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)],
        (300, 300),
    ),
    "ssd_non_square": (
        (
            "ssd_anchor_generator { num_layers: 3 min_scale: 0.1 max_scale: 0.8 "
            "aspect_ratios: [1.0, 2.0, 0.5] interpolated_scale_aspect_ratio: 2.0 "
            "reduce_boxes_in_lowest_layer: false base_anchor_height: 1.5 base_anchor_width: 0.75 }"
        ),
        [(8, 10), (4, 5), (2, 3)],
        (128, 160),
    ),
    "ssd_scales_strides_offsets": (
        (
            "ssd_anchor_generator { num_layers: 2 scales: [0.3, 0.6] aspect_ratios: [1.0, 2.0] "
            "interpolated_scale_aspect_ratio: 0.0 height_stride: [16, 32] width_stride: [16, 32] "
            "height_offset: [8, 16] width_offset: [4, 8] }"
        ),
        [(4, 6), (2, 3)],
        (64, 96),
    ),
    "multiscale_retinanet": (
        (
            "multiscale_anchor_generator { min_level: 3 max_level: 7 anchor_scale: 4.0 "
            "aspect_ratios: [1.0, 2.0, 0.5] scales_per_octave: 2 }"
        ),
        [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)],
        (128, 128),
    ),
    # 96 is a multiple of every stride (centres at stride / 2), 130 of none (centres at 0).
    "multiscale_non_multiple_width": (
        (
            "multiscale_anchor_generator { min_level: 3 max_level: 5 anchor_scale: 3.0 "
            "aspect_ratios: [1.0, 2.0] scales_per_octave: 3 }"
        ),
        [(12, 17), (6, 9), (3, 5)],
        (96, 130),
    ),
}

MATCHER_CASES = {
    "single_threshold": "argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5 }",
    "ignored_band": "argmax_matcher { matched_threshold: 0.7 unmatched_threshold: 0.3 }",
    "negatives_between": (
        "argmax_matcher { matched_threshold: 0.7 unmatched_threshold: 0.3 "
        "negatives_lower_than_unmatched: false }"
    ),
    "force_match_for_each_row": (
        "argmax_matcher { matched_threshold: 0.7 unmatched_threshold: 0.3 "
        "force_match_for_each_row: true }"
    ),
    "ignore_thresholds": "argmax_matcher { ignore_thresholds: true }",
}

SSD_MATCHER = "argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5 }"
# name: (Matcher text, box coder scale factors or None, weights of the groundtruth rows)
TARGET_ASSIGNER_CASES = {
    "ssd": (SSD_MATCHER, SCALED, (1, 1, 1, 1, 1, 0)),
    "rpn": (
        (
            "argmax_matcher { matched_threshold: 0.7 unmatched_threshold: 0.3 "
            "force_match_for_each_row: true }"
        ),
        None,
        (1, 1, 1, 1, 1, 0),
    ),
    # Row 3, a real box, has weight 0: its anchors still match it, with weight 0.
    "zero_weight_box": (SSD_MATCHER, SCALED, (1, 1, 1, 0, 1, 0)),
}

# name: (PostProcessing text, per-class boxes, clip window or None, input kind)
NMS_CASES = {
    "per_class_clipped": (
        (
            "batch_non_max_suppression { score_threshold: 0.3 iou_threshold: 0.5 "
            "max_detections_per_class: 5 max_total_detections: 12 }"
        ),
        False,
        (0.0, 0.0, 1.0, 1.0),
        "clusters",
    ),
    "per_class_defaults": (
        (
            "batch_non_max_suppression { score_threshold: 0.0 iou_threshold: 0.6 "
            "max_detections_per_class: 8 max_total_detections: 20 }"
        ),
        False,
        None,
        "clusters",
    ),
    "per_class_boxes": (
        (
            "batch_non_max_suppression { score_threshold: 0.2 iou_threshold: 0.5 "
            "max_detections_per_class: 4 max_total_detections: 10 }"
        ),
        True,
        (0.0, 0.0, 1.0, 1.0),
        "clusters",
    ),
    "class_agnostic": (
        (
            "batch_non_max_suppression { score_threshold: 0.1 iou_threshold: 0.5 "
            "max_detections_per_class: 10 max_total_detections: 10 use_class_agnostic_nms: true }"
        ),
        False,
        (0.0, 0.0, 1.0, 1.0),
        "clusters",
    ),
    "soft_nms": (
        (
            "batch_non_max_suppression { score_threshold: 0.25 iou_threshold: 1.0 "
            "max_detections_per_class: 6 max_total_detections: 15 soft_nms_sigma: 0.5 }"
        ),
        False,
        (0.0, 0.0, 1.0, 1.0),
        "clusters",
    ),
    # One high-scoring box wholly outside the clip window and one of zero area.
    "outside_and_empty_boxes": (
        (
            "batch_non_max_suppression { score_threshold: 0.3 iou_threshold: 0.5 "
            "max_detections_per_class: 5 max_total_detections: 12 }"
        ),
        False,
        (0.0, 0.0, 1.0, 1.0),
        "edge",
    ),
}

SCORE_CONVERTER_CASES = {
    "sigmoid": "score_converter: SIGMOID",
    "softmax_logit_scale": "score_converter: SOFTMAX logit_scale: 2.5",
}

RESIZER_CASES = {
    "keep_aspect_bilinear_padded": (
        "keep_aspect_ratio_resizer { min_dimension: 40 max_dimension: 64 "
        "pad_to_max_dimension: true per_channel_pad_value: [10.0, 120.5, 255.0] }"
    ),
    "keep_aspect_nearest": (
        "keep_aspect_ratio_resizer { min_dimension: 40 max_dimension: 48 "
        "resize_method: NEAREST_NEIGHBOR }"
    ),
    "keep_aspect_area": (
        "keep_aspect_ratio_resizer { min_dimension: 40 max_dimension: 48 resize_method: AREA }"
    ),
    "fixed_bilinear": "fixed_shape_resizer { height: 40 width: 56 }",
    "fixed_nearest": (
        "fixed_shape_resizer { height: 40 width: 56 resize_method: NEAREST_NEIGHBOR }"
    ),
    "fixed_area": "fixed_shape_resizer { height: 40 width: 56 resize_method: AREA }",
    "fixed_bicubic": "fixed_shape_resizer { height: 40 width: 56 resize_method: BICUBIC }",
}

# (height, width, min_dimension, max_dimension) for the sizes-only resize_to_range check.
RESIZE_TO_RANGE_SIZES = [
    (161, 240, 128, 128),
    (240, 161, 128, 128),
    (480, 640, 600, 1024),
    (1000, 1333, 600, 1024),
    (500, 1000, 512, 1024),
    (375, 500, 320, 512),
    (427, 640, 800, 1333),
    (640, 427, 800, 1333),
    (300, 300, 128, 160),
    (100, 1001, 600, 1024),
    (511, 1023, 600, 1024),
    (333, 500, 333, 500),
    (150, 151, 100, 100),
    (719, 1279, 640, 640),
]


def _parse(text, message):
    return text_format.Parse(text, message)


def anchors(out):
    for name, (text, shapes, (height, width)) in ANCHOR_CASES.items():
        generator = anchor_generator_builder.build(
            _parse(text, anchor_generator_pb2.AnchorGenerator())
        )
        if text.startswith("grid_anchor_generator"):
            boxlists = generator.generate(shapes)
        else:
            boxlists = generator.generate(shapes, im_height=height, im_width=width)
        prefix = f"anchors/{name}"
        out[f"{prefix}/config"] = np.array(text)
        out[f"{prefix}/feature_map_shapes"] = np.array(shapes, np.int32)
        out[f"{prefix}/image_shape"] = np.array([height, width], np.int32)
        for index, boxlist in enumerate(boxlists):
            out[f"{prefix}/anchors/{index}"] = boxlist.get().numpy()


def _random_boxes(rng, count, low=0.0, high=1.0, min_size=0.02, max_size=0.5):
    """`[count, 4]` float32 `yxyx` boxes with centres in [low, high] and sides in range."""
    centres = rng.uniform(low, high, size=(count, 2))
    sizes = rng.uniform(min_size, max_size, size=(count, 2))
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)


def box_coder(out, rng):
    count = 64
    anchors_ = _random_boxes(rng, count)
    boxes = _random_boxes(rng, count)
    codes = rng.normal(0.0, 1.0, size=(count, 4)).astype(np.float32)
    # Log-scale codes far past what a trained head predicts: exp() grows boxes by up to e^8.
    large = np.concatenate(
        [rng.uniform(-3, 3, size=(count, 2)), rng.uniform(-8, 8, size=(count, 2))], axis=1
    )
    for scales in (SCALED, None):
        coder = faster_rcnn_box_coder.FasterRcnnBoxCoder(scale_factors=scales)
        factors = np.array(scales if scales else [], np.float32)
        suffix = "scaled" if scales else "unscaled"
        for case, case_codes in (("", codes), ("large_codes_", large)):
            if scales:
                case_codes = case_codes * factors
            prefix = f"box_coder/{case}{suffix}"
            out[f"{prefix}/scale_factors"] = factors
            out[f"{prefix}/anchors"] = anchors_
            out[f"{prefix}/boxes"] = boxes
            out[f"{prefix}/encoded"] = coder.encode(
                box_list.BoxList(tf.constant(boxes)), box_list.BoxList(tf.constant(anchors_))
            ).numpy()
            out[f"{prefix}/codes"] = case_codes.astype(np.float32)
            out[f"{prefix}/decoded"] = (
                coder.decode(
                    tf.constant(case_codes, tf.float32), box_list.BoxList(tf.constant(anchors_))
                )
                .get()
                .numpy()
            )


def _similarity(rng):
    """`[5, 40]` similarities: row 1 never reaches 0.7 (force matching gives it an anchor), rows
    0 and 2 have the same best anchor (the lower row wins), row 3 is the invalid row."""
    similarity = rng.uniform(0.0, 0.9, size=(5, 40)).astype(np.float32)
    similarity[1] *= 0.5
    similarity[0, 7] = 0.95
    similarity[2, 7] = 0.97
    similarity[3, 11] = 0.99
    valid_rows = np.array([True, True, True, False, True])
    return similarity, valid_rows


def matcher(out, rng):
    similarity, valid_rows = _similarity(rng)
    for name, text in MATCHER_CASES.items():
        built = matcher_builder.build(_parse(text, matcher_pb2.Matcher()))
        prefix = f"matcher/{name}"
        out[f"{prefix}/config"] = np.array(text)
        out[f"{prefix}/similarity"] = similarity
        out[f"{prefix}/valid_rows"] = valid_rows
        out[f"{prefix}/match"] = built.match(tf.constant(similarity)).match_results.numpy()
        out[f"{prefix}/match_with_invalid_row"] = built.match(
            tf.constant(similarity), valid_rows=tf.constant(valid_rows)
        ).match_results.numpy()


def _anchor_grid():
    """48 anchors: a 4x4 grid of centres with three sizes each, normalized."""
    centres = (np.arange(4) + 0.5) / 4
    rows = []
    for y in centres:
        for x in centres:
            for height, width in ((0.25, 0.25), (0.35, 0.2), (0.5, 0.5)):
                rows.append([y - height / 2, x - width / 2, y + height / 2, x + width / 2])
    return np.array(rows, np.float32)


def target_assigner_cases(out, rng):
    num_classes = 3
    anchors_ = _anchor_grid()
    gt_boxes = np.concatenate(
        [
            _random_boxes(rng, 3, low=0.2, high=0.8, min_size=0.2, max_size=0.5),
            anchors_[22:23] + [[0.01, -0.01, 0.02, 0.0]],  # near an anchor: IoU > 0.8
            [[0.0, 0.0, 0.25, 0.25]],  # exactly an anchor: IoU 1
            [[0.0, 0.0, 0.0, 0.0]],  # padding
        ]
    ).astype(np.float32)
    gt_labels = np.array([1, 3, 2, 2, 1, 0], np.int32)
    one_hot = tf.one_hot(gt_labels, num_classes + 1)
    unmatched = tf.one_hot(0, num_classes + 1)
    for name, (text, scales, weights) in TARGET_ASSIGNER_CASES.items():
        gt_weights = np.array(weights, np.float32)
        assigner = target_assigner.TargetAssigner(
            region_similarity_calculator.IouSimilarity(),
            matcher_builder.build(_parse(text, matcher_pb2.Matcher())),
            faster_rcnn_box_coder.FasterRcnnBoxCoder(scale_factors=scales),
        )
        cls_targets, cls_weights, reg_targets, reg_weights, match = assigner.assign(
            box_list.BoxList(tf.constant(anchors_)),
            box_list.BoxList(tf.constant(gt_boxes)),
            groundtruth_labels=one_hot,
            unmatched_class_label=unmatched,
            groundtruth_weights=tf.constant(gt_weights),
        )
        prefix = f"target_assigner/{name}"
        out[f"{prefix}/config"] = np.array(text)
        out[f"{prefix}/scale_factors"] = np.array(scales if scales else [], np.float32)
        out[f"{prefix}/anchors"] = anchors_
        out[f"{prefix}/gt_boxes"] = gt_boxes
        out[f"{prefix}/gt_labels"] = gt_labels
        out[f"{prefix}/gt_weights"] = gt_weights
        cls_targets = cls_targets.numpy()
        # One-hot rows (background first) → the class index; every row is exactly one-hot.
        assert np.all(cls_targets.sum(axis=1) == 1.0)
        out[f"{prefix}/cls_targets"] = cls_targets.argmax(axis=1).astype(np.int32)
        # cls_weights come tiled per class; every class column holds the anchor's weight.
        cls_weights = cls_weights.numpy()
        assert np.all(cls_weights == cls_weights[:, :1])
        out[f"{prefix}/cls_weights"] = cls_weights[:, 0]
        out[f"{prefix}/reg_targets"] = reg_targets.numpy()
        out[f"{prefix}/reg_weights"] = reg_weights.numpy()
        out[f"{prefix}/match"] = match.numpy()


def _cluster_boxes(rng, batch, count):
    """`[batch, count, 4]` boxes jittered around 6 centres per image (so that many overlap),
    some reaching past the unit square, none of zero area once clipped to it."""
    centres = rng.uniform(0.1, 0.9, size=(batch, 6, 2))
    picks = rng.integers(0, 6, size=(batch, count))
    chosen = np.take_along_axis(centres, picks[..., None], axis=1)
    chosen = chosen + rng.normal(0.0, 0.03, size=chosen.shape)
    sizes = rng.uniform(0.1, 0.4, size=(batch, count, 2))
    return np.concatenate([chosen - sizes / 2, chosen + sizes / 2], axis=-1).astype(np.float32)


def nms(out, rng):
    batch, count, num_classes = 2, 48, 4
    for name, (text, per_class_boxes, clip_window, kind) in NMS_CASES.items():
        q = num_classes if per_class_boxes else 1
        boxes = _cluster_boxes(rng, batch, count * q).reshape(batch, count, q, 4)
        scores = rng.uniform(0.0, 1.0, size=(batch, count, num_classes)).astype(np.float32)
        if kind == "edge":
            boxes[0, 0, 0] = [1.2, 0.3, 1.5, 0.6]  # wholly below the image
            boxes[0, 1, 0] = [0.4, 0.4, 0.4, 0.7]  # zero height
            scores[0, :2, 1] = [0.99, 0.98]
        config = _parse(text, post_processing_pb2.PostProcessing())
        nms_fn, _ = post_processing_builder.build(config)
        window = None if clip_window is None else tf.constant(clip_window, tf.float32)
        # Without a clip window the frame cannot change (the builder's default is to change it).
        nmsed_boxes, nmsed_scores, nmsed_classes, _, _, num_detections = nms_fn(
            tf.constant(boxes),
            tf.constant(scores),
            clip_window=window,
            change_coordinate_frame=window is not None,
        )
        prefix = f"nms/{name}"
        out[f"{prefix}/config"] = np.array(text)
        out[f"{prefix}/boxes"] = boxes
        out[f"{prefix}/scores"] = scores
        out[f"{prefix}/clip_window"] = np.array(clip_window or [], np.float32)
        out[f"{prefix}/nmsed_boxes"] = nmsed_boxes.numpy()
        out[f"{prefix}/nmsed_scores"] = nmsed_scores.numpy()
        out[f"{prefix}/nmsed_classes"] = nmsed_classes.numpy().astype(np.int32)
        out[f"{prefix}/num_detections"] = num_detections.numpy().astype(np.int32)


def score_converters(out, rng):
    logits = rng.normal(0.0, 3.0, size=(2, 10, 4)).astype(np.float32)
    for name, text in SCORE_CONVERTER_CASES.items():
        _, converter = post_processing_builder.build(
            _parse(text, post_processing_pb2.PostProcessing())
        )
        prefix = f"score_converter/{name}"
        out[f"{prefix}/config"] = np.array(text)
        out[f"{prefix}/logits"] = logits
        out[f"{prefix}/scores"] = converter(tf.constant(logits)).numpy()


def resizers(out):
    photo = load_photo()[0]
    for name, text in RESIZER_CASES.items():
        resize = image_resizer_builder.build(_parse(text, image_resizer_pb2.ImageResizer()))
        resized, true_image_shape = resize(photo)
        prefix = f"resizer/{name}"
        out[f"{prefix}/config"] = np.array(text)
        out[f"{prefix}/resized"] = resized.numpy()
        out[f"{prefix}/true_image_shape"] = np.asarray(true_image_shape, np.int32)
    rows = []
    for height, width, min_dimension, max_dimension in RESIZE_TO_RANGE_SIZES:
        _, new_size = preprocessor.resize_to_range(
            tf.zeros([height, width, 1]),
            min_dimension=min_dimension,
            max_dimension=max_dimension,
        )
        rows.append([height, width, min_dimension, max_dimension, *np.asarray(new_size)[:2]])
    out["resize_to_range/sizes"] = np.array(rows, np.int32)


def main():
    tf.random.set_seed(SEED)
    rng = np.random.default_rng(SEED)
    out = {}
    anchors(out)
    box_coder(out, rng)
    matcher(out, rng)
    target_assigner_cases(out, rng)
    nms(out, rng)
    score_converters(out, rng)
    resizers(out)
    np.savez_compressed(OUTPUT, **out)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1e3:.1f} kB, {len(out)} arrays)")


if __name__ == "__main__":
    main()
