"""Evaluation: COCO metrics (pycocotools) and Pascal VOC AP."""
