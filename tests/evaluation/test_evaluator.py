"""COCOEvaluator: pycocotools-exact numbers, VOC sets by name, curves, and the fit callback."""

import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import kdet
import tiny_ssd_extractor
from kdet.evaluation import COCO_METRIC_NAMES
from kdet.evaluation import COCOEvaluator
from kdet.evaluation import compute_pascal_voc_metrics

IMAGE_SIZE = 64
LABEL_MAP = {1: "square", 2: "circle"}


def _model(bounding_box_format="yxyx"):
    keras.utils.set_random_seed(7)
    model = kdet.SSD(
        num_classes=2,
        feature_extractor=tiny_ssd_extractor.NAME,
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=kdet.layers.SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
        bounding_box_format=bounding_box_format,
    )
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return model


@pytest.fixture(scope="module")
def model():
    """A random tiny SSD: 100 detections per image, a few of them on objects."""
    return _model()


def _dataset(num_images=8, batch_size=3, seed=2):
    images, y = kdet.datasets.shapes(num_images, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=seed)
    return tf.data.Dataset.from_tensor_slices((images.astype("float32"), y)).batch(batch_size)


def _ground_truth_and_detections(model, dataset, num_images=None):
    """Per-image numpy ground truth and detections, gathered by hand from the same batches."""
    groundtruth, detections = [], []
    for images, y in dataset:
        predictions = model.predict_on_batch(images)
        for b in range(len(images)):
            real = y["labels"][b].numpy() != -1
            groundtruth.append(
                {"boxes": y["boxes"][b].numpy()[real], "labels": y["labels"][b].numpy()[real]}
            )
            n = int(predictions["num_detections"][b])
            detections.append({key: predictions[key][b][:n]
                               for key in ("boxes", "labels", "confidences")})
    return groundtruth[:num_images], detections[:num_images]


def _xywh(box):
    y_min, x_min, y_max, x_max = (float(v) for v in box)
    return [x_min, y_min, x_max - x_min, y_max - y_min]


def _cocoeval_by_hand(groundtruth, detections, tmp_path):
    """pycocotools on COCO JSON files written here, the way a COCO user would run it."""
    annotations = []
    for i, image in enumerate(groundtruth):
        for box, label in zip(image["boxes"], image["labels"]):
            x, y, width, height = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(label), "bbox": [x, y, width, height],
                                "area": width * height, "iscrowd": 0})
    results = [
        {"image_id": i + 1, "category_id": int(label), "bbox": _xywh(box), "score": float(score)}
        for i, image in enumerate(detections)
        for box, label, score in zip(image["boxes"], image["labels"], image["confidences"])
    ]
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps({
        "images": [{"id": i + 1} for i in range(len(groundtruth))],
        "annotations": annotations,
        "categories": [{"id": k, "name": v} for k, v in LABEL_MAP.items()],
    }))
    dt_file.write_text(json.dumps(results))
    coco = COCO(str(gt_file))
    evaluation = COCOeval(coco, coco.loadRes(str(dt_file)), iouType="bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation


def test_coco_metrics_equal_pycocotools_run_by_hand(model, tmp_path):
    groundtruth, detections = _ground_truth_and_detections(model, _dataset())
    by_hand = _cocoeval_by_hand(groundtruth, detections, tmp_path)
    assert by_hand.stats[1] > 0  # some detections find objects

    evaluator = COCOEvaluator(_dataset(), label_map=LABEL_MAP, include_metrics_per_category=True)
    metrics = evaluator.evaluate(model)
    assert list(metrics)[:12] == list(COCO_METRIC_NAMES)
    assert [metrics[name] for name in COCO_METRIC_NAMES] == by_hand.stats.tolist()
    precision = by_hand.eval["precision"][:, :, :, 0, -1]
    for k, name in enumerate(LABEL_MAP.values()):
        defined = precision[:, :, k][precision[:, :, k] > -1]
        assert metrics[f"DetectionBoxes_PerformanceByCategory/mAP/{name}"] == np.mean(defined)

    # Without include_metrics_per_category (the TF OD API default): the 12 numbers alone.
    assert list(COCOEvaluator(_dataset(), label_map=LABEL_MAP).evaluate(model)) == list(
        COCO_METRIC_NAMES
    )


def test_num_examples_evaluates_the_first_images(model, tmp_path):
    groundtruth, detections = _ground_truth_and_detections(model, _dataset(), num_images=5)
    by_hand = _cocoeval_by_hand(groundtruth, detections, tmp_path)
    metrics = COCOEvaluator(_dataset(), label_map=LABEL_MAP, num_examples=5).evaluate(model)
    assert [metrics[name] for name in COCO_METRIC_NAMES] == by_hand.stats.tolist()


def test_progress_is_a_bar_of_the_images_detected_when_asked(model, capsys, monkeypatch):
    from kdet.evaluation import evaluator as evaluator_module
    from kdet.utils.progress import progress_bar

    bars = []

    def recorded_bar(*args, **kwargs):
        # The bar waits a second before it shows (short evaluations stay quiet): not here.
        bars.append(progress_bar(*args, **{**kwargs, "delay": 0}))
        return bars[-1]

    monkeypatch.setattr(evaluator_module, "progress_bar", recorded_bar)
    evaluator = COCOEvaluator(_dataset(), label_map=LABEL_MAP, num_examples=5)
    quiet = evaluator.evaluate(model)
    assert capsys.readouterr().err == "" and bars[0].disable
    assert evaluator.evaluate(model, step=7, progress=True) == quiet
    assert "evaluating step 7:" in capsys.readouterr().err
    assert (bars[1].desc, bars[1].n, bars[1].total, bars[1].unit) == (
        "evaluating step 7", 5, 5, "image"
    )


def test_pascal_voc_sets_by_name_and_curves(model):
    groundtruth, detections = _ground_truth_and_detections(model, _dataset())
    sets = ("pascal_voc_detection_metrics", "weighted_pascal_voc_detection_metrics")
    evaluator = COCOEvaluator(_dataset(), label_map=LABEL_MAP, metrics_sets=sets)
    metrics, curves = evaluator.evaluate(model, return_curves=True)
    voc, voc_curves = compute_pascal_voc_metrics(
        groundtruth, detections, label_map=LABEL_MAP, return_curves=True
    )
    weighted = compute_pascal_voc_metrics(groundtruth, detections, label_map=LABEL_MAP,
                                          weighted=True)
    assert metrics == {**voc, **weighted}
    assert not any(name.startswith("DetectionBoxes") for name in metrics)
    assert 0 < metrics["PascalBoxes_Precision/mAP@0.5IOU"] <= 1

    assert set(curves) == {"square", "circle"}
    for label, name in LABEL_MAP.items():
        np.testing.assert_array_equal(curves[name]["precision"], voc_curves[label]["precision"])
        np.testing.assert_array_equal(curves[name]["recall"], voc_curves[label]["recall"])
        assert curves[name]["average_precision"] == voc[
            f"PascalBoxes_PerformanceByCategory/AP@0.5IOU/{name}"
        ]

    voc07 = COCOEvaluator(_dataset(), label_map=LABEL_MAP, metrics_sets=sets[0],
                          use_07_metric=True).evaluate(model)
    assert voc07 == compute_pascal_voc_metrics(groundtruth, detections, label_map=LABEL_MAP,
                                               use_07_metric=True)
    assert voc07 != voc


def test_boxes_in_the_models_format_give_the_same_metrics(model):
    xyxy_model = _model("xyxy")
    xyxy_model.set_weights(model.get_weights())
    images, y = next(iter(_dataset(num_images=8, batch_size=8)))
    y_xyxy = {**y, "boxes": kdet.boxes.convert_format(y["boxes"], "yxyx", "xyxy")}
    xyxy_dataset = tf.data.Dataset.from_tensors((images, y_xyxy))
    sets = ("coco_detection_metrics", "pascal_voc_detection_metrics")
    expected = COCOEvaluator(_dataset(), metrics_sets=sets).evaluate(model)
    assert COCOEvaluator(xyxy_dataset, metrics_sets=sets).evaluate(xyxy_model) == expected


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown metrics set 'coco_boxes'; kdet supports "
                       r"coco_detection_metrics, pascal_voc_detection_metrics, "
                       r"weighted_pascal_voc_detection_metrics, oid_V2_detection_metrics, "
                       r"oid_challenge_detection_metrics, precision_at_recall_detection_metrics, "
                       r"coco_mask_metrics \(and the older names "
                       r"open_images_V2_detection_metrics, "):
        COCOEvaluator(_dataset(), metrics_sets=["coco_boxes"])
    with pytest.raises(ValueError, match=r"'lvis_mask_metrics' is not computed by kdet: kdet "
                                         r"computes the metrics of instance masks as "
                                         r"coco_mask_metrics only"):
        COCOEvaluator(_dataset(), metrics_sets=["lvis_mask_metrics"])
    with pytest.raises(ValueError, match="repeats forever; pass a finite dataset or num_examples"):
        COCOEvaluator(_dataset().repeat())
    COCOEvaluator(_dataset().repeat(), num_examples=4)  # fine: it stops after 4 images


def _events(log_dir):
    """`{tag: {step: value}}`: floats for scalars, decoded images for image summaries."""
    events = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.dtype == object:  # an image summary: width, height, PNG
                    array = np.asarray(Image.open(io.BytesIO(array[2])))
                else:
                    array = float(array)
                events.setdefault(value.tag, {})[event.step] = array
    return events


def test_callback_puts_metrics_in_history_and_tensorboard(tmp_path):
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    sets = ("coco_detection_metrics", "pascal_voc_detection_metrics")
    evaluator = COCOEvaluator(_dataset(), label_map=LABEL_MAP, metrics_sets=sets,
                              log_dir=tmp_path, num_visualizations=2)
    history = model.fit(_dataset(num_images=8, batch_size=4, seed=5), epochs=2,
                        callbacks=[evaluator], shuffle=False, verbose=0)
    maps = history.history["DetectionBoxes_Precision/mAP"]
    assert len(maps) == len(history.history["loss"]) == 2
    assert len(history.history["PascalBoxes_Precision/mAP@0.5IOU"]) == 2
    # The last epoch's numbers are those of the final weights.
    assert maps[-1] == evaluator.evaluate(model)["DetectionBoxes_Precision/mAP"]

    events = _events(tmp_path)
    assert events["DetectionBoxes_Precision/mAP"] == pytest.approx({2: maps[0], 4: maps[1]})
    assert set(events["PascalBoxes_Precision/mAP@0.5IOU"]) == {2, 4}
    assert {tag for tag in events if tag.startswith("eval_side_by_side")} == {
        "eval_side_by_side_0", "eval_side_by_side_1"
    }
    side_by_side = events["eval_side_by_side_0"][4]
    assert side_by_side.shape == (IMAGE_SIZE, 2 * IMAGE_SIZE, 3)
    # The ground-truth half has boxes drawn on the image.
    image = next(iter(_dataset()))[0][0].numpy().round().astype(np.uint8)
    assert (side_by_side[:, IMAGE_SIZE:] != image).any()


def test_callback_every_n_steps(tmp_path):
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    evaluator = COCOEvaluator(_dataset(), every_n_steps=3, log_dir=tmp_path, num_visualizations=0)
    history = model.fit(_dataset(num_images=16, batch_size=4, seed=5), epochs=2,
                        callbacks=[evaluator], shuffle=False, verbose=0)
    events = _events(tmp_path)
    assert set(events["DetectionBoxes_Precision/mAP"]) == {3, 6}
    assert not any(tag.startswith("eval_side_by_side") for tag in events)
    # Epoch 1 (steps 1-4) evaluated at step 3, epoch 2 (steps 5-8) at step 6.
    assert history.history["DetectionBoxes_Precision/mAP"] == pytest.approx(
        [events["DetectionBoxes_Precision/mAP"][3], events["DetectionBoxes_Precision/mAP"][6]]
    )


def test_difficult_boxes_are_left_out_of_the_pascal_voc_metrics(model, tmp_path):
    # Every circle is marked difficult: the TF OD API's Pascal evaluator then has no circle to
    # count (AP NaN), while the COCO metrics count them all.
    images, y = kdet.datasets.shapes(6, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=5)
    examples = []
    for image, boxes, labels in zip(images, y["boxes"], y["labels"]):
        real = labels > 0
        encoded = kdet.data.encode_image(image, "png")
        examples.append(kdet.data.create_tf_example(
            encoded, IMAGE_SIZE, IMAGE_SIZE, boxes[real] / IMAGE_SIZE, labels[real],
            [LABEL_MAP[int(label)] for label in labels[real]],
            difficult=(labels[real] == 2).astype("int64"),
        ))
    kdet.data.write_tfrecord(examples, tmp_path / "eval.record")
    dataset = kdet.data.read_tfrecords(tmp_path / "eval.record", batch_size=3, shuffle=False,
                                       include_difficult=True)
    flags = np.concatenate([batch_y["difficult"].numpy() for _, batch_y in dataset])
    labels = np.concatenate([batch_y["labels"].numpy() for _, batch_y in dataset])
    np.testing.assert_array_equal(flags, (labels == 2).astype("int32"))
    assert (labels == 2).any() and (labels == 1).any()

    metrics = COCOEvaluator(dataset, label_map=LABEL_MAP, metrics_sets=(
        "pascal_voc_detection_metrics", "coco_detection_metrics")).evaluate(model)
    assert np.isnan(metrics["PascalBoxes_PerformanceByCategory/AP@0.5IOU/circle"])
    groundtruth, detections = _ground_truth_and_detections(model, dataset)
    for image, image_flags in zip(groundtruth, flags.reshape(6, -1)):
        image["difficult"] = image_flags[: len(image["labels"])].astype(bool)
    by_hand = compute_pascal_voc_metrics(groundtruth, detections, label_map=LABEL_MAP)
    assert metrics["PascalBoxes_Precision/mAP@0.5IOU"] == by_hand["PascalBoxes_Precision/mAP@0.5IOU"]


def test_include_difficult_refuses_augmentation(tmp_path):
    # One real example: read_tfrecords refuses a file without any before it looks further.
    image = np.zeros([IMAGE_SIZE, IMAGE_SIZE, 3], "uint8")
    example = kdet.data.create_tf_example(
        kdet.data.encode_image(image, "png"), IMAGE_SIZE, IMAGE_SIZE,
        np.array([[0.1, 0.1, 0.5, 0.5]]), np.array([1]), ["square"],
    )
    kdet.data.write_tfrecord([example], tmp_path / "one.record")
    with pytest.raises(ValueError, match="augmentation=None"):
        kdet.data.read_tfrecords(tmp_path / "one.record", include_difficult=True,
                                 augmentation=[{"random_horizontal_flip": {}}])
