"""Evaluation: COCO metrics (pycocotools) and Pascal VOC AP."""

from kdet.evaluation.coco_metrics import COCO_METRIC_NAMES
from kdet.evaluation.coco_metrics import compute_coco_metrics
from kdet.evaluation.pascal_voc_metrics import compute_pascal_voc_metrics
from kdet.evaluation.per_image import detections_per_image
from kdet.evaluation.per_image import groundtruth_per_image
