"""`COCOEvaluator`: TF OD API detection metrics of a detector over a dataset.

One class, used three ways: `evaluator.evaluate(model)` from Python, as a Keras callback that
evaluates `self.model` during `fit`, and by `kdet eval` on each checkpoint of a model
directory. The metrics are those of the TF OD API `eval_config.metrics_set`s, under their
TF OD API names.
"""

import collections
import contextlib
import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from kdet.boxes import convert_format
from kdet.data.label_map import read_label_map
from kdet.data.label_map import read_label_map_items
from kdet.data.label_map import read_label_map_keypoints
from kdet.evaluation.coco_metrics import COCO_MASK_METRIC_NAMES
from kdet.evaluation.coco_metrics import COCO_METRIC_NAMES
from kdet.evaluation.coco_metrics import MASK_THRESHOLD
from kdet.evaluation.coco_metrics import compute_coco_keypoint_metrics
from kdet.evaluation.coco_metrics import compute_coco_mask_metrics
from kdet.evaluation.coco_metrics import compute_coco_metrics
from kdet.evaluation.coco_metrics import decode_masks
from kdet.evaluation.coco_metrics import encode_masks
from kdet.evaluation.open_images_metrics import compute_open_images_metrics
from kdet.evaluation.pascal_voc_metrics import compute_pascal_voc_metrics
from kdet.evaluation.pascal_voc_metrics import evaluate_detections
from kdet.evaluation.per_image import detections_per_image
from kdet.evaluation.per_image import groundtruth_per_image
from kdet.utils.model_step import optimizer_step
from kdet.utils.progress import progress_bar
from kdet.visualization import draw_detections

# The TF OD API `eval_config.metrics_set` names kdet computes, in the order it reports them.
COCO_DETECTION_METRICS = "coco_detection_metrics"
COCO_MASK_METRICS = "coco_mask_metrics"
# The COCO sets (boxes, masks): the function computing each and the names it reports without
# `include_metrics_per_category`.
_COCO_SETS = {
    COCO_DETECTION_METRICS: (compute_coco_metrics, COCO_METRIC_NAMES),
    COCO_MASK_METRICS: (compute_coco_mask_metrics, COCO_MASK_METRIC_NAMES),
}
PASCAL_VOC_DETECTION_METRICS = "pascal_voc_detection_metrics"
WEIGHTED_PASCAL_VOC_DETECTION_METRICS = "weighted_pascal_voc_detection_metrics"
OID_V2_DETECTION_METRICS = "oid_V2_detection_metrics"
OID_CHALLENGE_DETECTION_METRICS = "oid_challenge_detection_metrics"
PRECISION_AT_RECALL_DETECTION_METRICS = "precision_at_recall_detection_metrics"
# The `metrics_sets` names `COCOEvaluator` accepts, in the order it reports them.
METRICS_SETS = (
    COCO_DETECTION_METRICS,
    PASCAL_VOC_DETECTION_METRICS,
    WEIGHTED_PASCAL_VOC_DETECTION_METRICS,
    OID_V2_DETECTION_METRICS,
    OID_CHALLENGE_DETECTION_METRICS,
    PRECISION_AT_RECALL_DETECTION_METRICS,
    COCO_MASK_METRICS,
)
# Other names of the same sets: the TF OD API's deprecated ones (`open_images_V2_…`,
# `oid_challenge_object_…`) and those of its 2017 releases (`coco_metrics`,
# `pascal_voc_metrics`, `weighted_pascal_voc_metrics`, `open_images_metrics`), which sample
# configs still use.
METRICS_SET_ALIASES = {
    "open_images_V2_detection_metrics": OID_V2_DETECTION_METRICS,
    "open_images_metrics": OID_V2_DETECTION_METRICS,
    "oid_challenge_object_detection_metrics": OID_CHALLENGE_DETECTION_METRICS,
    "coco_metrics": COCO_DETECTION_METRICS,
    "pascal_voc_metrics": PASCAL_VOC_DETECTION_METRICS,
    "weighted_pascal_voc_metrics": WEIGHTED_PASCAL_VOC_DETECTION_METRICS,
}
# TF OD API metrics sets kdet cannot compute, and why.
_UNSUPPORTED_METRICS_SETS = {
    name: "kdet computes the metrics of instance masks as coco_mask_metrics only"
    for name in (
        "pascal_voc_instance_segmentation_metrics",
        "weighted_pascal_voc_instance_segmentation_metrics",
        "oid_challenge_segmentation_metrics",
        "lvis_mask_metrics",
        "coco_panoptic_metrics",
    )
}
_UNSUPPORTED_METRICS_SETS["coco_keypoint_metrics"] = (
    "keypoint metrics are set per class, with eval_config.parameterized_metric { "
    "coco_keypoint_metrics { class_label: … keypoint_label_to_sigmas { … } } } "
    "(COCOEvaluator(keypoint_metrics=…)), as in the TF OD API (whose metrics_set of this name "
    "cannot be built)"
)
# The IoU of the per-class precision/recall curves, as in the Pascal VOC metrics.
CURVES_IOU_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class CocoKeypointMetrics:
    """COCO keypoint metrics of one class: the TF OD API's `CocoKeypointMetrics` message
    (`eval_config.parameterized_metric { coco_keypoint_metrics { … } }`).

    Attributes:
        class_label: str, the class whose keypoints are evaluated, as the label map names it
            (its `display_name`, or its `name`); the metric names end in `ByCategory/<it>`.
        keypoint_label_to_sigmas: dict `{keypoint label: OKS sigma}` with an entry for each
            of the class's keypoints, or None (or empty) for 0.05 for all, as in the TF OD
            API.
        keypoints: dict `{keypoint label: keypoint id}` (an id indexes the keypoint axis of
            `"keypoints"`), or None to take the class's `keypoints { id label }` from the
            label map file.
    """

    class_label: str
    keypoint_label_to_sigmas: dict = None
    keypoints: dict = None


def check_metrics_sets(metrics_sets):
    """Checks TF OD API `metrics_set` names and returns them as a tuple.

    Args:
        metrics_sets: a name or a sequence of names from `METRICS_SETS` or
            `METRICS_SET_ALIASES`.

    Returns:
        tuple of str from `METRICS_SETS` (an alias replaced by its name), without
        duplicates, in the given order.

    Raises:
        ValueError: for no name, a set kdet cannot compute (saying why), or a name kdet does
            not know (the message lists the supported ones).
    """
    names = (metrics_sets,) if isinstance(metrics_sets, str) else tuple(metrics_sets)
    if not names:
        raise ValueError(f"no metrics set given; expected some of {', '.join(METRICS_SETS)}")
    for name in names:
        if name in _UNSUPPORTED_METRICS_SETS:
            raise ValueError(
                f"metrics set {name!r} is not computed by kdet: "
                f"{_UNSUPPORTED_METRICS_SETS[name]}; kdet supports {', '.join(METRICS_SETS)}"
            )
        if name not in METRICS_SETS and name not in METRICS_SET_ALIASES:
            raise ValueError(
                f"unknown metrics set {name!r}; kdet supports {', '.join(METRICS_SETS)} "
                f"(and the older names {', '.join(METRICS_SET_ALIASES)})"
            )
    return tuple(dict.fromkeys(METRICS_SET_ALIASES.get(name, name) for name in names))


class COCOEvaluator(keras.callbacks.Callback):
    """Evaluates a detector on a dataset with the TF OD API detection metrics.

    Runs `model.predict_on_batch` on the images of each batch, collects ground truth and
    detections (padding rows dropped) and computes the selected `metrics_sets`:

    - `"coco_detection_metrics"`: `compute_coco_metrics` (pycocotools), the 12
      `DetectionBoxes_…` numbers, and `DetectionBoxes_PerformanceByCategory/mAP/<name>` with
      `include_metrics_per_category` (and the 12 numbers per category with
      `all_metrics_per_category` too);
    - `"coco_mask_metrics"`: `compute_coco_mask_metrics`, the same 12 numbers (and
      per-category ones) of the instance masks, `DetectionMasks_…`: the `"masks"` the model
      predicts (probabilities, the object where > 0.5) against `y["masks"]`, as the TF OD
      API's `CocoMaskEvaluator` computes them. The masks are run-length encoded batch by
      batch, so the evaluation holds no full-size mask arrays;
    - `"pascal_voc_detection_metrics"`: `compute_pascal_voc_metrics`, `PascalBoxes_…` mAP and
      per-class AP at IoU 0.5;
    - `"weighted_pascal_voc_detection_metrics"`: the same with `weighted=True`,
      `WeightedPascalBoxes_…`;
    - `"oid_V2_detection_metrics"`: `compute_open_images_metrics`, `OpenImagesV2_…` mAP and
      per-class AP at IoU 0.5, group-of boxes (`y["group_of"]`) excusing the detections
      inside them;
    - `"oid_challenge_detection_metrics"`: the same with `challenge=True`,
      `OpenImagesDetectionChallenge_…`: a detected group-of box is one true positive, and
      only classes with a box or a verified image-level label (`y["image_labels"]`) on an
      image are judged there.

    - `"precision_at_recall_detection_metrics"`: the Pascal VOC AP over the part of each
      precision/recall curve whose recall lies in [`recall_lower_bound`,
      `recall_upper_bound`], `PrecisionAtRecallBoxes_Precision/mAP@0.5IOU` (with
      `@[<lower>,<upper>]Recall` appended unless the range is [0, 1]) and per class.

    The older TF OD API names (`METRICS_SET_ALIASES`: `open_images_V2_detection_metrics`,
    `open_images_metrics`, `coco_metrics`, …) select the same sets.

    Each of `keypoint_metrics` (TF OD API `parameterized_metric { coco_keypoint_metrics { …
    } }`) adds the COCO keypoint metrics of one class after the sets:
    `compute_coco_keypoint_metrics`, pycocotools' OKS AP of the `"keypoints"` the model
    predicts against those of `y`, the 10 `Keypoints_<name> ByCategory/<class_label>`
    numbers.

    As a Keras callback (`model.fit(..., callbacks=[evaluator])`) it evaluates `self.model`
    every `every_n_epochs` epochs, or every `every_n_steps` optimizer steps, and adds the
    metrics to the epoch's `logs`, so they appear in the `History` under their names (the
    latest evaluation of the epoch, with `every_n_steps`).

    With `log_dir`, every evaluation also writes the metrics as TensorBoard scalars, and the
    first `num_visualizations` images side by side (detections left, ground truth right) as
    the images `eval_side_by_side_<i>`, as the TF OD API evaluator does.

    Args:
        dataset: a finite `tf.data.Dataset` (or any iterable) of batches `(images, y)`
            (further elements are ignored), as `kdet.data.read_tfrecords` and
            `kdet.configs.eval_dataset` make them: images `[batch, height, width, 3]` raw
            pixels (or the dict of resized images and `true_image_shape` that
            `eval_dataset` gives for a `keep_aspect_ratio_resizer` model), `y = {"boxes":
            [batch, num_boxes, 4], "labels": [batch, num_boxes]}` padded with -1 rows (and
            optionally `"difficult"`, `"group_of"` and `"image_labels"`, as
            `read_tfrecords(include_difficult=True)` gives them), boxes
            in the model's `bounding_box_format` in pixels of `images` (of each resized
            image's content, for the dict; the predictions come back in the same pixels).
            With keypoints, `y["keypoints"]` `[batch, num_boxes, K, 2]` (y, x) in the unit
            of the boxes and `y["keypoint_visibilities"]` `[batch, num_boxes, K]` (0 = not
            labelled), and the model predicts `"keypoints"` the same way. With
            `"coco_mask_metrics"`, `y["masks"]` uint8 `[batch, num_boxes, H, W]` (as
            `read_tfrecords(load_instance_masks=True)` gives it) and the model predicts
            `"masks"` `[batch, max_detections, H, W]` in the pixels of the images (for the
            dict of resized images, both are cut to each image's true shape).
        label_map: dict `{label id: name}` or the path of a `.pbtxt` label map: the classes
            evaluated and their names. When None, the labels found, named by their id.
        metrics_sets: a name or a sequence of names from `METRICS_SETS` (TF OD API
            `eval_config.metrics_set`). Defaults to `("coco_detection_metrics",)`.
        include_metrics_per_category: bool. Add the COCO per-category mAP (TF OD API
            `eval_config.include_metrics_per_category`). Defaults to `False`.
        all_metrics_per_category: bool. With `include_metrics_per_category`, all 12 COCO
            numbers per category (`DetectionBoxes_Precision mAP ByCategory/<name>`, …; TF
            OD API `eval_config.all_metrics_per_category`). Defaults to `False`.
        super_categories: dict `{name: [category names]}` or None. With
            `include_metrics_per_category`, add each super-category's mAP (TF OD API
            `eval_config.super_categories`; see `compute_coco_metrics`). Defaults to None.
        use_moving_averages: bool. Evaluate the moving averages of the trained weights that
            the model's optimizer keeps (`use_ema`; TF OD API `use_moving_average` in
            `train_config`, `eval_config.use_moving_averages`): they replace the trainable
            weights while the images are detected, and the trained weights come back after.
            Defaults to `False`.
        use_07_metric: bool. Pascal VOC AP (and the curves' AP) as the VOC2007 11-point
            mean. Defaults to `False`.
        recall_lower_bound, recall_upper_bound: floats, the recall range of
            `"precision_at_recall_detection_metrics"` (TF OD API
            `eval_config.recall_lower_bound` / `recall_upper_bound`). Defaults to `0.0` and
            `1.0`.
        num_examples: int or None. Evaluate only the first `num_examples` images. Required
            for an endless dataset. Defaults to `None` (all).
        every_n_epochs: int. As a callback: evaluate after every n-th epoch. Defaults to `1`.
        every_n_steps: int or None. As a callback: evaluate every n optimizer steps instead
            of by epochs. Defaults to `None`.
        log_dir: str or path, or None. TensorBoard folder for the metrics and images.
        num_visualizations: int. Images drawn to TensorBoard per evaluation (with
            `log_dir`). Defaults to `10`.
        min_score_threshold: float. Detections drawn must score at least this. Defaults to
            `0.5`.
        max_num_boxes_to_visualize: int. The most confident detections drawn per image.
            Defaults to `20`.
        keypoint_metrics: a sequence of `CocoKeypointMetrics` (or dicts of its fields), one
            per class whose keypoints are evaluated; the class is looked up in `label_map`
            by name (a `.pbtxt` path also matches `display_name` and gives the class's
            keypoint ids). Defaults to `()`.
        keypoint_edges: sequence of `(start, end)` keypoint ids joined by a line in the
            drawings (TF OD API `eval_config.keypoint_edge`), or None. Keypoints are drawn
            when the dataset or the predictions have them. Defaults to None.

    Attributes:
        last_visualizations: list of uint8 `[height, 2 * width, 3]` images of the last
            evaluation (with `log_dir`): detections left, ground truth right.

    Example:
    ```python
    dataset = kdet.data.read_tfrecords("val.record", batch_size=8, image_size=320,
                                       shuffle=False, label_map="label_map.pbtxt")
    evaluator = kdet.evaluation.COCOEvaluator(dataset, label_map="label_map.pbtxt")
    evaluator.evaluate(model)["DetectionBoxes_Precision/mAP"]
    model.fit(train, epochs=10, callbacks=[evaluator])  # metrics in the History
    # Keypoints: the label map lists the class's keypoints { id label }.
    evaluator = kdet.evaluation.COCOEvaluator(
        dataset, label_map="person_label_map.pbtxt", keypoint_edges=[(0, 1), (0, 2)],
        keypoint_metrics=[kdet.evaluation.CocoKeypointMetrics(
            "person", keypoint_label_to_sigmas={"nose": 0.026, "left_eye": 0.025, ...})])
    evaluator.evaluate(model)["Keypoints_Precision/mAP ByCategory/person"]
    ```
    """

    def __init__(
        self,
        dataset,
        label_map=None,
        metrics_sets=(COCO_DETECTION_METRICS,),
        include_metrics_per_category=False,
        use_07_metric=False,
        num_examples=None,
        every_n_epochs=1,
        every_n_steps=None,
        log_dir=None,
        num_visualizations=10,
        min_score_threshold=0.5,
        max_num_boxes_to_visualize=20,
        recall_lower_bound=0.0,
        recall_upper_bound=1.0,
        all_metrics_per_category=False,
        use_moving_averages=False,
        super_categories=None,
        keypoint_metrics=(),
        keypoint_edges=None,
    ):
        super().__init__()
        if not 0.0 <= recall_lower_bound <= recall_upper_bound <= 1.0:
            raise ValueError(
                "the recall bounds must satisfy 0 <= recall_lower_bound <= recall_upper_bound "
                f"<= 1; got {recall_lower_bound} and {recall_upper_bound}"
            )
        if num_examples is not None and num_examples < 1:
            raise ValueError(f"num_examples must be at least 1 or None, got {num_examples}")
        if num_examples is None and _is_endless(dataset):
            raise ValueError(
                "the evaluation dataset repeats forever; pass a finite dataset or num_examples"
            )
        for name, value in (("every_n_epochs", every_n_epochs), ("every_n_steps", every_n_steps)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.dataset = dataset
        label_map_items, label_map_keypoints = (), {}
        if isinstance(label_map, (str, os.PathLike)):
            label_map_items = read_label_map_items(label_map)
            label_map_keypoints = read_label_map_keypoints(label_map)
            label_map = read_label_map(label_map)
        self.label_map = label_map
        self.keypoint_metrics = tuple(
            spec if isinstance(spec, CocoKeypointMetrics) else CocoKeypointMetrics(**spec)
            for spec in keypoint_metrics
        )
        self._keypoint_classes = [
            _keypoint_class(spec, label_map, label_map_items, label_map_keypoints)
            for spec in self.keypoint_metrics
        ]
        self.keypoint_edges = None if keypoint_edges is None else tuple(
            (int(start), int(end)) for start, end in keypoint_edges
        )
        self.metrics_sets = check_metrics_sets(metrics_sets)
        self.include_metrics_per_category = include_metrics_per_category
        self.use_07_metric = use_07_metric
        self.num_examples = num_examples
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.log_dir = None if log_dir is None else str(log_dir)
        self.num_visualizations = num_visualizations
        self.min_score_threshold = min_score_threshold
        self.max_num_boxes_to_visualize = max_num_boxes_to_visualize
        self.all_metrics_per_category = all_metrics_per_category
        self.use_moving_averages = use_moving_averages
        self.super_categories = super_categories
        self.recall_lower_bound = recall_lower_bound
        self.recall_upper_bound = recall_upper_bound
        self._writer = None
        self._unlogged = None
        self.last_visualizations = []

    def evaluate(self, model=None, return_curves=False, step=None, progress=False):
        """Runs the model over the dataset and computes the metrics.

        Args:
            model: a kdet detector (any Keras model whose `predict_on_batch` returns the kdet
                predictions dict). Defaults to the callback's model.
            return_curves: bool. Also return the per-class precision/recall curves at IoU
                `CURVES_IOU_THRESHOLD` (from `compute_pascal_voc_metrics`). Defaults to
                `False`.
            step: int. The TensorBoard step (with `log_dir`). Defaults to the model's
                optimizer `iterations`, or 0 for a model without an optimizer.
            progress: bool. Draw a bar of the images detected on stderr once detecting
                takes more than a second (it goes when done). Defaults to `False`.

        Returns:
            An ordered dict `{metric name: float}`, the sets in the order given. With
            `return_curves`, a tuple `(metrics, curves)`: `curves[class name]` is a dict with
            float64 arrays `"precision"` and `"recall"` (one entry per detection, by
            decreasing confidence) and the float `"average_precision"`, for each class with
            ground truth in the evaluated images.

        Raises:
            ValueError: without a model, if the dataset has no images, or with
                `use_moving_averages` when the model's optimizer keeps no averages.
        """
        model = self.model if model is None else model
        if model is None:
            raise ValueError("evaluate() needs a model (none given, and not used in fit)")
        description = "evaluating" if step is None else f"evaluating step {step}"
        weights = (
            moving_average_weights(model) if self.use_moving_averages
            else contextlib.nullcontext()
        )
        with weights, progress_bar(description=description, unit="image",
                                   total=self.num_examples, enabled=progress) as bar:
            groundtruth, detections, images = self._detect(model, bar.update)
        metrics = collections.OrderedDict()
        for name in self.metrics_sets:
            metrics.update(self._metrics_set(name, groundtruth, detections))
        for category_id, spec, keypoints in self._keypoint_classes:
            metrics.update(
                compute_coco_keypoint_metrics(
                    groundtruth,
                    detections,
                    category_id,
                    keypoints,
                    category_name=spec.class_label,
                    keypoint_sigmas=spec.keypoint_label_to_sigmas,
                )
            )
        self.last_visualizations = [
            self._side_by_side(*sample) for sample in zip(images, detections, groundtruth)
        ]
        if self.log_dir is not None:
            self._write_summaries(
                metrics,
                self.last_visualizations,
                optimizer_step(model) if step is None else step,
            )
        if return_curves:
            return metrics, self._curves(groundtruth, detections)
        return metrics

    # -- Keras callback ------------------------------------------------------------------------

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps and optimizer_step(self.model) % self.every_n_steps == 0:
            self._unlogged = self.evaluate()

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_steps is None and (epoch + 1) % self.every_n_epochs == 0:
            self._unlogged = self.evaluate()
        if self._unlogged is not None and logs is not None:
            logs.update(self._unlogged)
        self._unlogged = None

    # -- steps ---------------------------------------------------------------------------------

    def _detect(self, model, detected=lambda count: None):
        """Ground truth and detections per image (yxyx pixels), and the images to draw;
        `detected(count)` is called after each batch with its number of images."""
        box_format = getattr(model, "bounding_box_format", "yxyx")
        num_drawn = self.num_visualizations if self.log_dir is not None else 0
        groundtruth, detections, images = [], [], []
        for batch in self.dataset:
            batch_images, y = batch[0], batch[1]
            if self.num_examples is not None:
                keep = self.num_examples - len(groundtruth)
                batch_images = _first_images(batch_images, keep)
                y = {key: value[:keep] for key, value in y.items()}
            predictions = model.predict_on_batch(batch_images)
            y = _to_pixels(y, box_format, batch_images)
            predictions = _to_pixels(predictions, box_format, batch_images)
            if COCO_MASK_METRICS in self.metrics_sets:
                _check_masks(y, predictions)
            else:  # not needed: their full-size arrays would only take memory
                y, predictions = _without_masks(y), _without_masks(predictions)
            batch_groundtruth = groundtruth_per_image(y)
            batch_detections = detections_per_image(predictions)
            if COCO_MASK_METRICS in self.metrics_sets:
                _encode_image_masks(batch_groundtruth, batch_images, threshold=0.0)
                _encode_image_masks(batch_detections, batch_images, MASK_THRESHOLD)
            groundtruth += batch_groundtruth
            detections += batch_detections
            detected(len(batch_groundtruth))
            wanted = max(num_drawn - len(images), 0)
            images += _drawable_images(batch_images, wanted)
            if self.num_examples is not None and len(groundtruth) >= self.num_examples:
                break
        if not groundtruth:
            raise ValueError("the evaluation dataset has no images")
        return groundtruth, detections, images

    def _metrics_set(self, name, groundtruth, detections):
        if name in _COCO_SETS:
            compute, names = _COCO_SETS[name]
            metrics = compute(
                groundtruth,
                detections,
                label_map=self.label_map,
                all_metrics_per_category=self.all_metrics_per_category,
                super_categories=self.super_categories,
            )
            if self.include_metrics_per_category:
                return metrics
            return collections.OrderedDict((key, metrics[key]) for key in names)
        if name in (OID_V2_DETECTION_METRICS, OID_CHALLENGE_DETECTION_METRICS):
            return compute_open_images_metrics(
                groundtruth,
                detections,
                challenge=name == OID_CHALLENGE_DETECTION_METRICS,
                label_map=self.label_map,
            )
        if name == PRECISION_AT_RECALL_DETECTION_METRICS:
            return evaluate_detections(
                groundtruth,
                detections,
                prefix="PrecisionAtRecallBoxes",
                use_07_metric=self.use_07_metric,
                label_map=self.label_map,
                recall_lower_bound=self.recall_lower_bound,
                recall_upper_bound=self.recall_upper_bound,
            )
        return compute_pascal_voc_metrics(
            groundtruth,
            detections,
            use_07_metric=self.use_07_metric,
            weighted=name == WEIGHTED_PASCAL_VOC_DETECTION_METRICS,
            label_map=self.label_map,
        )

    def _curves(self, groundtruth, detections):
        metrics, curves = compute_pascal_voc_metrics(
            groundtruth,
            detections,
            iou_threshold=CURVES_IOU_THRESHOLD,
            use_07_metric=self.use_07_metric,
            label_map=self.label_map,
            return_curves=True,
        )
        prefix = f"PascalBoxes_PerformanceByCategory/AP@{CURVES_IOU_THRESHOLD}IOU/"
        names = self.label_map or {}
        result = {}
        for label, curve in curves.items():
            if curve["num_groundtruth"] == 0:
                continue  # no curve is defined, as the class is left out of the mAP
            name = str(names.get(label, label))
            result[name] = {
                "precision": curve["precision"],
                "recall": curve["recall"],
                "average_precision": metrics[prefix + name],
            }
        return result

    def _side_by_side(self, image, detections, groundtruth):
        """uint8 `[height, 2 * width, 3]`: detections drawn left, ground truth right."""
        detections = _decoded_masks(detections, image.shape[:2])
        groundtruth = _decoded_masks(groundtruth, image.shape[:2])
        top = np.argsort(-detections["confidences"], kind="stable")
        top = top[: self.max_num_boxes_to_visualize]
        drawn = draw_detections(
            image,
            {key: value[top] for key, value in detections.items()},
            self.label_map,
            score_threshold=self.min_score_threshold,
            keypoint_edges=self.keypoint_edges,
        )
        truth = draw_detections(
            image, groundtruth, self.label_map, keypoint_edges=self.keypoint_edges
        )
        return np.concatenate([drawn, truth], axis=1)

    def _write_summaries(self, metrics, images, step):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(name, value)
            for index, image in enumerate(images):
                tf.summary.image(f"eval_side_by_side_{index}", image[None])
        self._writer.flush()


@contextlib.contextmanager
def moving_average_weights(model):
    """Within the block, `model`'s trainable weights are the moving averages its optimizer keeps.

    The TF OD API evaluates with `eval_config.use_moving_averages` this way (its TF2 loop swaps
    the optimizer's averages in). The trained values come back on exit.

    Args:
        model: a Keras model whose optimizer has `use_ema=True` and is built (trained, or
            restored from a checkpoint, which holds the averages).

    Raises:
        ValueError: when the optimizer keeps no moving averages.

    Example:
    ```python
    with moving_average_weights(model):
        predictions = model.predict(images)
    ```
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "use_ema", False) or not optimizer.built:
        raise ValueError(
            "use_moving_averages needs the moving averages of the weights: the model's "
            "optimizer must average them (use_ema=True; the TF OD API's use_moving_average: "
            "true) and hold them (trained, or restored from a checkpoint)"
        )
    variables = model.trainable_variables
    trained = [keras.ops.convert_to_numpy(variable) for variable in variables]
    optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, trained, strict=True):
            variable.assign(value)


def _is_endless(dataset):
    cardinality = getattr(dataset, "cardinality", None)
    return cardinality is not None and int(cardinality()) == tf.data.INFINITE_CARDINALITY


def _keypoint_class(spec, label_map, label_map_items, label_map_keypoints):
    """`(category id, spec, {keypoint label: id})` of a `CocoKeypointMetrics`: its class
    found in the label map by `class_label` (an item's `display_name` or `name`, as the TF OD
    API names categories by their display name), its keypoints those of `spec` or of the
    label map file (`label_map_keypoints`: `{class id: (KeypointItem, …)}`)."""
    where = f"keypoint_metrics for class_label {spec.class_label!r}"
    if label_map is None:
        raise ValueError(f"{where}: a label map is needed to find the class; got none")
    matches = [
        item for item in label_map_items if spec.class_label in (item.display_name, item.name)
    ]
    category_id = (
        matches[0].id if matches
        else next((i for i, name in label_map.items() if name == spec.class_label), None)
    )
    if category_id is None:
        raise ValueError(
            f"{where}: the label map has no class of that name; its names are "
            f"{sorted(set(label_map.values()))}"
        )
    keypoints = spec.keypoints
    if keypoints is None:
        keypoints = {point.label: point.id for point in label_map_keypoints.get(category_id, ())}
    if not keypoints:
        raise ValueError(
            f"{where}: the class's keypoints are unknown; list them in its label map item "
            "(keypoints { id: 0 label: 'nose' } …) or give CocoKeypointMetrics(keypoints="
            "{label: id})"
        )
    return category_id, spec, dict(keypoints)


def _check_masks(y, predictions):
    """Raises a ValueError naming `coco_mask_metrics` when `y` or `predictions` has no
    `"masks"`."""
    if "masks" not in predictions:
        raise ValueError(
            f"metrics set {COCO_MASK_METRICS!r} needs the instance masks the model predicts, "
            f"but its predictions have no 'masks' (keys: {', '.join(sorted(predictions))}): "
            "evaluate a model that predicts instance masks (e.g. a Mask R-CNN, "
            "predict_instance_masks: true), or leave coco_mask_metrics out of "
            "eval_config.metrics_set"
        )
    if "masks" not in y:
        raise ValueError(
            f"metrics set {COCO_MASK_METRICS!r} needs ground-truth instance masks, but the "
            f"evaluation dataset's y has no 'masks' (keys: {', '.join(sorted(y))}): read "
            "records holding image/object/mask with load_instance_masks=True "
            "(eval_input_reader { load_instance_masks: true })"
        )


def _without_masks(data):
    return {key: value for key, value in data.items() if key != "masks"}


def _encode_image_masks(entries, images, threshold):
    """Replaces the `"masks"` of per-image dicts by their RLEs (`encode_masks` with
    `threshold`), cut to each image's true shape for the dict of resized images."""
    shapes = None
    if isinstance(images, dict):
        from kdet.layers.image_resizer import TRUE_IMAGE_SHAPE

        shapes = keras.ops.convert_to_numpy(images[TRUE_IMAGE_SHAPE])
    for index, entry in enumerate(entries):
        masks = entry["masks"]
        if shapes is not None:
            height, width = shapes[index][:2]
            masks = masks[:, :height, :width]
        entry["masks"] = encode_masks(masks, threshold)


def _decoded_masks(data, shape):
    """`data` with its `"masks"` RLEs (if any) decoded to uint8 `[n, height, width]`."""
    if "masks" not in data:
        return data
    return {**data, "masks": decode_masks(data["masks"], *shape)}


def _to_pixels(data, bounding_box_format, images):
    """A predictions or ground-truth dict with `"boxes"` (and `"keypoints"`, if any) in yxyx
    pixels of `images` (see `_to_yxyx`)."""
    converted = {**data, "boxes": _to_yxyx(data["boxes"], bounding_box_format, images)}
    if "keypoints" in data and bounding_box_format.startswith("rel_"):
        # (y, x) keypoints scale like the corners of degenerate rel_yxyx boxes.
        keypoints = np.asarray(keras.ops.convert_to_numpy(data["keypoints"]), np.float32)
        points = keypoints.reshape(len(keypoints), -1, 2)
        pixels = _to_yxyx(np.concatenate([points, points], -1), "rel_yxyx", images)
        pixels = np.asarray(keras.ops.convert_to_numpy(pixels))[..., :2]
        converted["keypoints"] = pixels.reshape(keypoints.shape)
    return converted


def _to_yxyx(boxes, bounding_box_format, images):
    """Boxes `[batch, num_boxes, 4]` in `bounding_box_format` of `images` → yxyx pixels.

    `images` may be the dict of resized images and true shapes detectors take (see
    `kdet.models.ObjectDetector.resize_inputs`): pixels are then those of each content."""
    if bounding_box_format == "yxyx":
        return boxes
    if isinstance(images, dict):
        from kdet.models.object_detector import convert_boxes_of_images

        return convert_boxes_of_images(boxes, bounding_box_format, "yxyx", images)
    height, width = images.shape[1:3]
    return convert_format(boxes, bounding_box_format, "yxyx", height=height, width=width)


def _first_images(images, count):
    """The first `count` images of a batch (or of each entry of a dict of resized images)."""
    if isinstance(images, dict):
        return {key: value[:count] for key, value in images.items()}
    return images[:count]


def _drawable_images(images, count):
    """The first `count` images of a batch as numpy arrays; resized images without their
    padding (their true shape)."""
    if not isinstance(images, dict):
        return list(keras.ops.convert_to_numpy(images[:count]))
    from kdet.layers.image_resizer import RESIZED_IMAGES
    from kdet.layers.image_resizer import TRUE_IMAGE_SHAPE

    resized = keras.ops.convert_to_numpy(images[RESIZED_IMAGES][:count])
    shapes = keras.ops.convert_to_numpy(images[TRUE_IMAGE_SHAPE][:count])
    return [image[:height, :width] for image, (height, width) in zip(resized, shapes)]
