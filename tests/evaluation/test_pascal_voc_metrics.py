import numpy as np
import pytest

from kdet.evaluation import compute_pascal_voc_metrics

LABEL_MAP = {1: "cat", 2: "dog"}
MAP_KEY = "PascalBoxes_Precision/mAP@0.5IOU"
CAT_KEY = "PascalBoxes_PerformanceByCategory/AP@0.5IOU/cat"
DOG_KEY = "PascalBoxes_PerformanceByCategory/AP@0.5IOU/dog"


def _hand_built_case():
    """2 images, 2 classes; the outcome of every detection is decided by hand below.

    Image A: cats c1 [0,0,10,10], c2 [20,20,30,30]; dog d1 [0,20,10,30].
    Image B: cat c3 [0,0,20,20]; dogs d2 [10,10,30,30], d3 [40,40,50,50] (difficult).
    """
    groundtruth = [
        {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [0, 20, 10, 30]], "labels": [1, 1, 2]},
        {
            "boxes": [[0, 0, 20, 20], [10, 10, 30, 30], [40, 40, 50, 50]],
            "labels": [1, 2, 2],
            "difficult": [False, False, True],
        },
    ]
    detections = [
        {
            "boxes": [[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30], [0, 20, 10, 30]],
            "labels": [1, 1, 1, 2],
            # 0.9 c1 TP; 0.6 best box c1 (IoU 100/110) already taken: FP; 0.3 c2 TP; 0.8 d1 TP.
            "confidences": [0.9, 0.6, 0.3, 0.8],
        },
        {
            "boxes": [[50, 50, 60, 60], [0, 0, 20, 10], [40, 40, 50, 50], [10, 10, 20, 20]],
            "labels": [1, 1, 2, 2],
            # 0.7 no overlap: FP; 0.5 IoU with c3 = 200/400 = 0.5 exactly: TP (>= is a
            # match); 0.95 on the difficult d3: ignored; 0.4 IoU with d2 = 100/400: FP.
            "confidences": [0.7, 0.5, 0.95, 0.4],
        },
    ]
    return groundtruth, detections


# cat, 3 gt, by confidence: 0.9 TP, 0.7 FP, 0.6 FP, 0.5 TP, 0.3 TP
#   precision 1, 1/2, 1/3, 2/4, 3/5; recall 1/3, 1/3, 1/3, 2/3, 1
#   envelope (best precision at recall >= r): 1 up to r = 1/3, then 0.6
#   AP = 1/3 * 1 + 1/3 * 0.6 + 1/3 * 0.6 = 11/15
CAT_AP = 11 / 15
# dog, 2 gt (d3 is difficult), counted detections: 0.8 TP, 0.4 FP (0.95 ignored)
#   precision 1, 1/2; recall 1/2, 1/2; AP = 1/2 * 1 + 1/2 * 0 = 1/2
DOG_AP = 0.5


def test_hand_computed_average_precision():
    metrics = compute_pascal_voc_metrics(*_hand_built_case(), label_map=LABEL_MAP)
    assert list(metrics) == [MAP_KEY, CAT_KEY, DOG_KEY]
    assert metrics[CAT_KEY] == pytest.approx(CAT_AP)
    assert metrics[DOG_KEY] == pytest.approx(DOG_AP)
    assert metrics[MAP_KEY] == pytest.approx((CAT_AP + DOG_AP) / 2)


def test_voc07_eleven_point_average_precision():
    metrics = compute_pascal_voc_metrics(
        *_hand_built_case(), use_07_metric=True, label_map=LABEL_MAP
    )
    # cat: best precision at recall >= t is 1 for t in {0, .1, .2, .3}, 0.6 for t >= .4
    cat = (4 * 1 + 7 * 0.6) / 11
    # dog: 1 for t in {0, ..., .5}, 0 above (recall never passes 1/2)
    dog = 6 / 11
    assert metrics[CAT_KEY] == pytest.approx(cat)
    assert metrics[DOG_KEY] == pytest.approx(dog)
    assert metrics[MAP_KEY] == pytest.approx((cat + dog) / 2)


def test_weighted_mean_ap_pools_all_classes():
    metrics = compute_pascal_voc_metrics(*_hand_built_case(), weighted=True, label_map=LABEL_MAP)
    # 5 gt; pooled by confidence: .9 TP, .8 TP, .7 FP, .6 FP, .5 TP, .4 FP, .3 TP
    #   precision 1, 1, 2/3, 1/2, 3/5, 1/2, 4/7; recall .2, .4, .4, .4, .6, .6, .8
    #   envelope at the recall steps: 1 (.2), 1 (.4), 0.6 (.6), 4/7 (.8)
    expected = 0.2 * 1 + 0.2 * 1 + 0.2 * 0.6 + 0.2 * 4 / 7
    assert metrics["WeightedPascalBoxes_Precision/mAP@0.5IOU"] == pytest.approx(expected)
    assert metrics["WeightedPascalBoxes_PerformanceByCategory/AP@0.5IOU/cat"] == pytest.approx(
        CAT_AP
    )


def test_precision_recall_curves():
    _, curves = compute_pascal_voc_metrics(
        *_hand_built_case(), label_map=LABEL_MAP, return_curves=True
    )
    np.testing.assert_allclose(curves[1]["precision"], [1, 1 / 2, 1 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(curves[1]["recall"], [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(curves[1]["confidences"], [0.9, 0.7, 0.6, 0.5, 0.3])
    assert curves[1]["num_groundtruth"] == 3
    np.testing.assert_allclose(curves[2]["confidences"], [0.8, 0.4])
    assert curves[2]["num_groundtruth"] == 2


def test_batched_padded_input_matches_lists():
    groundtruth, detections = _hand_built_case()
    expected = compute_pascal_voc_metrics(groundtruth, detections, label_map=LABEL_MAP)

    def pad(rows, width, size=5):
        rows = np.asarray(rows, np.float32).reshape(len(rows), -1)
        return np.concatenate([rows, -np.ones((size - len(rows), rows.shape[1]))]).reshape(
            (size, width) if width else (size,)
        )

    batched_gt = {
        "boxes": np.stack([pad(g["boxes"], 4) for g in groundtruth]),
        "labels": np.stack([pad(g["labels"], 0) for g in groundtruth]).astype(np.int32),
        "difficult": np.array([[0] * 5, [0, 0, 1, 0, 0]], bool),
    }
    # num_detections cuts real-looking rows after it, as a model's padded output may have.
    batched_dt = {
        "boxes": np.stack([pad(d["boxes"] + [[0, 0, 10, 10]], 4) for d in detections]),
        "labels": np.stack([pad(d["labels"] + [1], 0) for d in detections]).astype(np.int32),
        "confidences": np.stack([pad(d["confidences"] + [0.99], 0) for d in detections]),
        "num_detections": np.array([4, 4]),
    }
    metrics = compute_pascal_voc_metrics(batched_gt, batched_dt, label_map=LABEL_MAP)
    assert metrics == pytest.approx(expected)


def test_empty_images_and_classes_without_groundtruth():
    groundtruth, detections = _hand_built_case()
    empty_gt = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}
    empty_dt = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "confidences": []}
    label_map = {1: "cat", 2: "dog", 3: "bird", 4: "fish"}
    # A bird detection without bird ground truth; no fish at all.
    bird = {"boxes": [[0, 0, 5, 5]], "labels": [3], "confidences": [0.99]}
    metrics = compute_pascal_voc_metrics(
        groundtruth + [empty_gt, empty_gt], detections + [empty_dt, bird], label_map=label_map
    )
    assert np.isnan(metrics["PascalBoxes_PerformanceByCategory/AP@0.5IOU/bird"])
    assert np.isnan(metrics["PascalBoxes_PerformanceByCategory/AP@0.5IOU/fish"])
    # Classes without ground truth stay out of the mean, as in the TF OD API.
    assert metrics[MAP_KEY] == pytest.approx((CAT_AP + DOG_AP) / 2)


def test_groundtruth_without_detections_scores_zero():
    groundtruth, _ = _hand_built_case()
    empty_dt = {"boxes": np.zeros((0, 4)), "labels": [], "confidences": []}
    metrics = compute_pascal_voc_metrics(groundtruth, [empty_dt] * 2, label_map=LABEL_MAP)
    assert metrics == {MAP_KEY: 0.0, CAT_KEY: 0.0, DOG_KEY: 0.0}


def test_nothing_at_all_gives_nan():
    empty_gt = {"boxes": np.zeros((0, 4)), "labels": []}
    empty_dt = {"boxes": np.zeros((0, 4)), "labels": [], "confidences": []}
    metrics = compute_pascal_voc_metrics([empty_gt], [empty_dt])
    assert list(metrics) == [MAP_KEY] and np.isnan(metrics[MAP_KEY])
    weighted = compute_pascal_voc_metrics([empty_gt], [empty_dt], weighted=True)
    assert np.isnan(weighted["WeightedPascalBoxes_Precision/mAP@0.5IOU"])


def test_iou_threshold_changes_matches_and_key():
    groundtruth, detections = _hand_built_case()
    metrics = compute_pascal_voc_metrics(
        groundtruth, detections, iou_threshold=0.75, label_map=LABEL_MAP
    )
    # At 0.75 the cat at 0.5 (IoU 0.5) becomes a FP: 0.9 TP, .7 FP, .6 FP, .5 FP, .3 TP
    #   precision 1, .5, 1/3, 1/4, 2/5; recall 1/3, .., 2/3 → AP = 1/3 + 1/3 * 2/5
    assert metrics["PascalBoxes_PerformanceByCategory/AP@0.75IOU/cat"] == pytest.approx(
        1 / 3 + 2 / 15
    )
    assert "PascalBoxes_Precision/mAP@0.75IOU" in metrics


def test_empty_detection_boxes_are_dropped():
    groundtruth = [{"boxes": [[0, 0, 10, 10]], "labels": [1]}]
    # A zero-height box with the top score would otherwise be a FP ahead of the TP.
    detections = [
        {"boxes": [[5, 0, 5, 10], [0, 0, 10, 10]], "labels": [1, 1], "confidences": [0.9, 0.8]}
    ]
    metrics = compute_pascal_voc_metrics(groundtruth, detections)
    assert metrics == {MAP_KEY: 1.0, "PascalBoxes_PerformanceByCategory/AP@0.5IOU/1": 1.0}


def test_mismatched_image_counts():
    groundtruth, detections = _hand_built_case()
    with pytest.raises(ValueError, match="ground truth for 2 images but detections for 1"):
        compute_pascal_voc_metrics(groundtruth, detections[:1])


def test_bad_iou_threshold():
    with pytest.raises(ValueError, match="iou_threshold"):
        compute_pascal_voc_metrics([], [], iou_threshold=0.0)


def test_a_label_map_passed_third_is_a_clear_error():
    # compute_coco_metrics takes the label map third; here the third argument is iou_threshold.
    groundtruth, detections = _hand_built_case()
    with pytest.raises(TypeError, match=r"iou_threshold.*a dict; pass a label map as `label_map=`"):
        compute_pascal_voc_metrics(groundtruth, detections, {1: "cat", 2: "dog"})
