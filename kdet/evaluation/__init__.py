"""Evaluation: COCO box, instance-mask and keypoint metrics (pycocotools), Pascal VOC AP, and
`COCOEvaluator`, which computes them for a detector over a dataset (from Python, as a `fit`
callback, and for `kdet eval`), Open Images metrics;
`evaluate_checkpoint` / `evaluate_continuously` evaluate a model directory's checkpoints into
its `eval/` folder, as `kdet eval` does."""

from kdet.evaluation.coco_metrics import COCO_METRIC_NAMES
from kdet.evaluation.checkpoint_evaluation import evaluate_checkpoint
from kdet.evaluation.checkpoint_evaluation import evaluate_continuously
from kdet.evaluation.checkpoint_evaluation import pipeline_evaluator
from kdet.evaluation.coco_metrics import COCO_KEYPOINT_METRIC_NAMES
from kdet.evaluation.coco_metrics import COCO_MASK_METRIC_NAMES
from kdet.evaluation.coco_metrics import compute_coco_keypoint_metrics
from kdet.evaluation.coco_metrics import compute_coco_mask_metrics
from kdet.evaluation.coco_metrics import compute_coco_metrics
from kdet.evaluation.coco_metrics import encode_masks
from kdet.evaluation.evaluator import CURVES_IOU_THRESHOLD
from kdet.evaluation.evaluator import METRICS_SETS
from kdet.evaluation.evaluator import COCOEvaluator
from kdet.evaluation.evaluator import CocoKeypointMetrics
from kdet.evaluation.evaluator import check_metrics_sets
from kdet.evaluation.open_images_metrics import compute_open_images_metrics
from kdet.evaluation.pascal_voc_metrics import compute_pascal_voc_metrics
from kdet.evaluation.per_image import detections_per_image
from kdet.evaluation.per_image import groundtruth_per_image
