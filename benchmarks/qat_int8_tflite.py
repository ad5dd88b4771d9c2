"""Quantization-aware SSD → int8 TFLite: detections against the float Keras model on real photos.

The zoo's `ssd_mobilenet_v2_coco` (300×300) is made quantization-aware
(`kdet.training.quantization.QuantizationAwareTraining`), its batch norms frozen, and its
activation ranges learned in training-mode steps with learning rate 0 (no weight changes) on
random crops of the bundled photos and deepforest tiles. It is then exported with
`export_tflite(model, path)` (int8, the learned ranges) and run by the TFLite interpreter on the
5 bundled photos; each float detection scoring ≥ 0.5 is matched with the int8 model's
detection of the same label that overlaps it most. Results are in docs/export.md ("int8 TFLite").

    python benchmarks/qat_int8_tflite.py [--steps 40] [--ema_decay 0.9] [--output ssd_int8.tflite]

Needs the zoo extra (`pip install -e ".[zoo]"`).
"""

import argparse
import pathlib
import tempfile
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import kdet
from kdet.training.quantization import QuantizationAwareTraining

DATA = pathlib.Path(kdet.datasets.__path__[0]) / "data"
PHOTOS = ["photos/chelsea.jpg", "photos/coffee.jpg", "quokka.jpg", "photos/astronaut.jpg",
          "photos/grace_hopper.jpg"]
SIZE = 300
MIN_SCORE = 0.5


def _photo(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))


def _iou(a, b):
    overlap = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return overlap / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - overlap)


def _learn_ranges(model, images, steps, seed=0):
    """Training-mode calls on random crops and flips: the activation ranges move, the weights
    do not (no optimizer step; batch norms frozen so their statistics stay)."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    forward = tf.function(lambda batch: model(batch, training=True))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = images[rng.choice(len(images), 4)].astype("float32")
        top, left = rng.integers(0, 100, 2)
        size = rng.integers(200, SIZE - max(top, left) + 1)
        batch = tf.image.resize(batch[:, top:top + size, left:left + size], (SIZE, SIZE)).numpy()
        forward(tf.constant(batch if rng.random() < 0.5 else batch[:, :, ::-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--ema_decay", type=float, default=0.9)
    parser.add_argument("--output", default=None, help="the .tflite to write (a temporary file)")
    args = parser.parse_args()
    photos = np.stack([_photo(DATA / name) for name in PHOTOS])
    tiles = np.stack([_photo(path) for path in sorted((DATA / "deepforest").glob("*.png"))])

    model = kdet.zoo.load("ssd_mobilenet_v2_coco")
    float_detections = model.predict_on_batch(photos.astype("float32"))
    QuantizationAwareTraining(delay=0, ema_decay=args.ema_decay).apply(model)
    start = time.time()
    _learn_ranges(model, np.concatenate([tiles, photos]), args.steps)
    print(f"ranges learned in {args.steps} steps ({time.time() - start:.0f} s)")
    keras_detections = model.predict_on_batch(photos.astype("float32"))

    output = (pathlib.Path(args.output) if args.output
              else pathlib.Path(tempfile.mkdtemp()) / "ssd_int8.tflite")
    start = time.time()
    kdet.export.export_tflite(model, output, progress=False)
    print(f"exported {output} ({output.stat().st_size / 1e6:.1f} MB) in {time.time() - start:.0f} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(output))
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    convolutions = [op for op in interpreter._get_ops_details()
                    if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    int8 = [op for op in convolutions
            if [tensors[i]["dtype"] for i in op["inputs"]] == [np.int8, np.int8, np.int32]
            and tensors[op["outputs"][0]]["dtype"] == np.int8]
    print(f"{len(int8)} of {len(convolutions)} convolutions are int8")
    detect = interpreter.get_signature_runner()
    start = time.time()
    results = [detect(input_tensor=photo[np.newaxis]) for photo in photos]
    print(f"{(time.time() - start) / len(photos):.3f} s per image")

    worst_iou, worst_change, count = 1.0, 0.0, 0
    for index, name in enumerate(PHOTOS):
        boxes = results[index]["detection_boxes"][0]
        scores = results[index]["detection_scores"][0]
        labels = results[index]["detection_classes"][0]
        for box, score, label in zip(np.asarray(float_detections["boxes"][index]) / SIZE,
                                     np.asarray(float_detections["confidences"][index]),
                                     np.asarray(float_detections["labels"][index])):
            if score < MIN_SCORE:
                continue
            count += 1
            same = np.flatnonzero(labels == label)
            if not same.size:
                print(f"{name}: label {label} ({score:.3f}) not found")
                worst_iou = 0.0
                continue
            ious = [_iou(box, boxes[i]) for i in same]
            match = same[int(np.argmax(ious))]
            print(f"{name}: label {label}: float {score:.3f}, int8 {scores[match]:.3f}, "
                  f"IoU {max(ious):.3f}")
            worst_iou = min(worst_iou, max(ious))
            worst_change = max(worst_change, abs(scores[match] - score))
        print(f"  top scores: fake-quantized Keras "
              f"{np.round(np.asarray(keras_detections['confidences'][index][:3]), 3)}, "
              f"int8 TFLite {np.round(scores[:3], 3)}")
    print(f"{count} float detections ≥ {MIN_SCORE}: worst IoU {worst_iou:.3f}, "
          f"worst score change {worst_change:.3f}")


if __name__ == "__main__":
    main()
