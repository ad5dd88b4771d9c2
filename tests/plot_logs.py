"""Model directories with real TensorBoard logs and a precision_recall.json, for the plot tests.

The layouts are the ones `kdet.training.train` (`MODEL_DIR/train`: `losses/<name>`,
`learning_rate`) and `kdet eval` (`MODEL_DIR/eval`: metric names by checkpoint step,
`precision_recall.json`) write.
"""

import json

import tensorflow as tf

TRAIN_SCALARS = {
    "losses/loss": {10: 3.0, 20: 2.0, 30: 1.5},
    "losses/localization_loss": {10: 1.0, 20: 0.75, 30: 0.5},
    "losses/classification_loss": {10: 2.0, 20: 1.25, 30: 1.0},
    # Powers of two: exact in the float32 that `tf.summary.scalar` stores.
    "learning_rate": {10: 0.015625, 20: 0.015625, 30: 0.0009765625},
}
EVAL_SCALARS = {
    "DetectionBoxes_Precision/mAP": {20: 0.25, 30: 0.375},
    "DetectionBoxes_Precision/mAP@.50IOU": {20: 0.5, 30: 0.625},
    "DetectionBoxes_Precision/mAP (small)": {20: -1.0, 30: -1.0},
    "DetectionBoxes_Recall/AR@100": {20: 0.5, 30: 0.75},
    "PascalBoxes_Precision/mAP@0.5IOU": {20: 0.5, 30: 0.625},
}
PRECISION_RECALL = {
    "step": 30,
    "iou_threshold": 0.5,
    "classes": {
        "cat": {"precision": [1.0, 1.0, 0.6667], "recall": [0.5, 1.0, 1.0],
                "average_precision": 1.0},
        "dog": {"precision": [0.0, 0.5], "recall": [0.0, 0.5], "average_precision": 0.25},
        "bird": {"precision": [1.0, 0.5], "recall": [0.5, 0.5], "average_precision": 0.5},
        "fish": {"precision": [], "recall": [], "average_precision": float("nan")},
    },
}


def write_scalars(log_dir, scalars):
    """Writes `{tag: {step: value}}` with TF2 `tf.summary.scalar`, step by step."""
    writer = tf.summary.create_file_writer(str(log_dir))
    steps = sorted({step for values in scalars.values() for step in values})
    with writer.as_default():
        for step in steps:
            for tag, values in scalars.items():
                if step in values:
                    tf.summary.scalar(tag, values[step], step=step)
    writer.close()


def make_model_dir(path, precision_recall=True):
    """`path` with `train/` and `eval/` logs and, if asked, `eval/precision_recall.json`."""
    write_scalars(path / "train", TRAIN_SCALARS)
    write_scalars(path / "eval", EVAL_SCALARS)
    if precision_recall:
        (path / "eval" / "precision_recall.json").write_text(json.dumps(PRECISION_RECALL))
    return path
