"""Fine-tunes the zoo's `ssd_mobilenet_v2_coco` into a tree-crown detector on one aerial tile.

Trains `kdet.zoo.load("ssd_mobilenet_v2_coco", num_classes=1)` on random crops of the bundled
deepforest tile `OSBS_029` (400x400 px, 61 "Tree" boxes) and reports Pascal VOC AP@0.5 on the
held-out tile `SOAP_061` (37 boxes, "Alive" and "Dead" both counted as class 1 "Tree"), before
and after fine-tuning. Tree crowns are small (median ~30 px), so besides the whole 400x400 tile
(which the model shrinks to 300x300) SOAP_061 is also evaluated as overlapping 200x200 tiles,
each upscaled to 300x300 by the model, their detections mapped back and merged by NMS. Two more
numbers say why the held-out AP stays low: SOAP_061 with its Dead trees ignored, and the
training tile itself (see `evaluation_sets`).

Run from the repository root: `PYTHONPATH=. python benchmarks/ssd_deepforest_finetune.py`
(300 steps of batch 8: about 5 minutes on a quiet 2-core CPU, 10 under load; the recorded results
are in `benchmarks/README.md`). Needs `kdet[zoo]` (the TF OD API frozen graph).
"""

import argparse
import io
import json
import pathlib
import tempfile
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import kdet.datasets
import kdet.zoo
from kdet.data.augmentation import build_augmentation
from kdet.data.converters.voc import read_voc_xml
from kdet.data.input_pipeline import pad_groundtruth
from kdet.data.input_pipeline import resize_image_and_boxes
from kdet.evaluation import compute_pascal_voc_metrics

TREE_LABEL_MAP = {1: "Tree"}
AP_KEY = "PascalBoxes_Precision/mAP@0.5IOU"
MODEL_SIZE = 300
# At most this many trees fall in one training crop (OSBS_029 has 61 in all).
MAX_BOXES = 64
# Crops of 200..300 px (a quarter to 56% of the 400x400 tile) upscaled to 300x300 show trees
# 1.0-1.5x larger than in the tile, the scale the anchors of ssd_mobilenet_v2_coco suit.
AUGMENTATION = [
    (
        "random_crop_image",
        {
            "min_object_covered": 0.0,
            "min_aspect_ratio": 0.75,
            "max_aspect_ratio": 1.33,
            "min_area": 0.25,
            "max_area": 0.5625,
            "overlap_thresh": 0.5,
        },
    ),
    "random_horizontal_flip",
    "random_vertical_flip",
    "random_rotation90",
    ("random_adjust_brightness", {"max_delta": 0.1}),
    "random_adjust_contrast",
]
# The Yellowstone images of the deepforest wheel (`--deepforest_wheel`): 279 + 574 "Tree" boxes.
YELLOWSTONE_IMAGES = (
    "2019_YELL_2_541000_4977000_image_crop",
    "2019_YELL_2_528000_4978000_image_crop2",
)
# Overlapping eval tiles: a tree (at most 80 px) lies whole in at least one tile.
TILE_SIZE = 200
TILE_STRIDE = 100
MERGE_IOU_THRESHOLD = 0.5


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_arguments(parser, steps=300, batch_size=8, warmup_steps=30, eval_every=100)
    parser.add_argument(
        "--learning_rate", type=float, default=0.01, help="peak (after warm-up)"
    )
    parser.add_argument(
        "--freeze_batch_norm",
        action="store_true",
        help="keep every batch norm in inference mode with its COCO statistics",
    )
    return parser.parse_args()


def add_training_arguments(parser, steps, batch_size, warmup_steps, eval_every):
    """The arguments both deepforest fine-tuning scripts take, with their defaults."""
    parser.add_argument("--steps", type=int, default=steps, help="training steps")
    parser.add_argument("--batch_size", type=int, default=batch_size)
    parser.add_argument("--warmup_steps", type=int, default=warmup_steps)
    parser.add_argument(
        "--eval_every", type=int, default=eval_every, help="steps between evals"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument(
        "--deepforest_wheel",
        help="also train on the Yellowstone images of this deepforest==2.1.0 wheel "
        "(pip download deepforest==2.1.0 --no-deps -d DIR)",
    )
    parser.add_argument(
        "--save_dir",
        help="write the fine-tuned model here: config.json (keras.saving."
        "serialize_keras_object) and model.weights.h5, the files of a zoo entry",
    )


def training_tiles(deepforest_wheel=None):
    """The training tiles: `[(uint8 [400, 400, 3] image, float32 [n, 4] yxyx pixel boxes)]`.

    `OSBS_029` alone by default. With `deepforest_wheel` (the `deepforest==2.1.0` wheel from
    PyPI: `pip download deepforest==2.1.0 --no-deps -d DIR`) also the 400x400 tiles of its two
    Yellowstone images (`2019_YELL_2_*`, 853 "Tree" boxes): a tree is kept in a tile when at least
    half of it lies inside, clipped to the tile.
    """
    image, y = kdet.datasets.deepforest("OSBS_029")
    tiles = [(image, y["boxes"])]
    if deepforest_wheel:
        for image, boxes in _wheel_images(deepforest_wheel, YELLOWSTONE_IMAGES):
            tiles += _tiles_of(image, boxes)
    return tiles


def _wheel_images(wheel_path, names):
    """`(uint8 image, yxyx pixel boxes)` of the named deepforest data files in a wheel."""
    with zipfile.ZipFile(wheel_path) as wheel, tempfile.TemporaryDirectory() as folder:
        for name in names:
            xml_path = wheel.extract(f"deepforest/data/{name}.xml", folder)
            boxes = read_voc_xml(xml_path)["boxes"][:, [1, 0, 3, 2]].astype(np.float32)
            with Image.open(io.BytesIO(wheel.read(f"deepforest/data/{name}.png"))) as image:
                yield np.asarray(image.convert("RGB")), boxes


def _tiles_of(image, boxes, size=400):
    tiles = []
    for top in range(0, image.shape[0] - size + 1, size):
        for left in range(0, image.shape[1] - size + 1, size):
            shifted = boxes - np.array([top, left, top, left], np.float32)
            clipped = np.clip(shifted, 0, size)
            area = np.prod(shifted[:, 2:] - shifted[:, :2], axis=1)
            inside = np.prod(np.maximum(clipped[:, 2:] - clipped[:, :2], 0), axis=1)
            keep = inside >= 0.5 * area
            if keep.any():
                tiles.append((image[top : top + size, left : left + size], clipped[keep]))
    return tiles


def training_dataset(batch_size, seed, tiles):
    """Endless batches of augmented crops of `tiles`: 300x300 images, yxyx pixel boxes.

    Each example picks a tile uniformly at random, then augments it (`AUGMENTATION`).
    """
    images = np.stack([image for image, _ in tiles])
    counts = np.array([len(boxes) for _, boxes in tiles], np.int32)
    boxes = np.full((len(tiles), counts.max(), 4), -1, np.float32)
    for index, (image, tile_boxes) in enumerate(tiles):
        height, width = image.shape[:2]
        boxes[index, : len(tile_boxes)] = tile_boxes / np.array([height, width, height, width])
    images, counts, boxes = tf.constant(images), tf.constant(counts), tf.constant(boxes)
    augment = build_augmentation(AUGMENTATION)

    def example(example_seed):
        index = tf.random.stateless_uniform(
            [], tf.random.experimental.stateless_fold_in(example_seed, 1), 0, len(tiles), tf.int32
        )
        count = tf.gather(counts, index)
        tile_boxes = tf.gather(boxes, index)[:count]
        labels = tf.ones([count], tf.int32)
        crop, crop_boxes, crop_labels = augment(
            tf.gather(images, index), tile_boxes, labels, seed=example_seed
        )
        crop, crop_boxes, _ = resize_image_and_boxes(crop, crop_boxes, (MODEL_SIZE, MODEL_SIZE))
        crop_boxes, crop_labels = pad_groundtruth(crop_boxes * MODEL_SIZE, crop_labels, MAX_BOXES)
        # Padding rows stay -1: scaling made them -300.
        crop_boxes = tf.where(crop_labels[:, None] < 0, -1.0, crop_boxes)
        return crop, {"boxes": crop_boxes, "labels": crop_labels}

    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return seeds.map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)


def evaluation_sets():
    """`{name: (image name, groundtruth)}` of the reported AP@0.5 numbers.

    - `SOAP_061`: the held-out tile, its 37 trees (Alive and Dead) as label 1;
    - `SOAP_061 Alive`: the same with the 28 Dead trees `difficult` (detections on them are
      ignored, they are not counted): live crowns only, the kind of tree OSBS_029 shows;
    - `OSBS_029 (train)`: the training tile itself, a check of the fit, not of generalization.
    """
    sets = {}
    for name, image_name, ignore_dead in (
        ("SOAP_061", "SOAP_061", False),
        ("SOAP_061 Alive", "SOAP_061", True),
        ("OSBS_029 (train)", "OSBS_029", False),
    ):
        _, y = kdet.datasets.deepforest(image_name)
        groundtruth = {"boxes": y["boxes"], "labels": np.ones(len(y["boxes"]), np.int64)}
        if ignore_dead:
            groundtruth["difficult"] = np.array([c == "Dead" for c in y["class_names"]])
        sets[name] = (image_name, [groundtruth])
    return sets


def detect_full(model, image, class_agnostic=False):
    """Detections on the whole tile (the model resizes it to 300x300)."""
    predictions = model.predict(image[None], verbose=0)
    return [_as_trees(predictions, 0, class_agnostic)]


def detect_tiled(model, image, class_agnostic=False):
    """Detections on overlapping 200x200 tiles, mapped back to the tile and merged by NMS."""
    predictions = model.predict_tiled(
        image, TILE_SIZE, stride=TILE_STRIDE, iou_threshold=MERGE_IOU_THRESHOLD
    )
    return [_as_trees(predictions, 0, class_agnostic)]


def _as_trees(predictions, index, class_agnostic):
    """One image's detections; `class_agnostic` relabels every class as a tree (label 1)."""
    count = predictions["num_detections"][index]
    labels = predictions["labels"][index, :count]
    keep = np.ones(count, bool) if class_agnostic else labels == 1
    return {
        "boxes": predictions["boxes"][index, :count][keep],
        "labels": np.ones(keep.sum(), np.int64),
        "confidences": predictions["confidences"][index, :count][keep],
    }


def evaluate(model, class_agnostic=False):
    """AP@0.5 of the tree class: `{(set name, "full" or "tiled"): AP}`."""
    images = {name: kdet.datasets.deepforest(name)[0] for name in ("SOAP_061", "OSBS_029")}
    detections = {
        (name, mode): detect(model, image, class_agnostic)
        for name, image in images.items()
        for mode, detect in (("full", detect_full), ("tiled", detect_tiled))
    }
    return {
        (set_name, mode): compute_pascal_voc_metrics(
            groundtruth, detections[image_name, mode], label_map=TREE_LABEL_MAP
        )[AP_KEY]
        for set_name, (image_name, groundtruth) in evaluation_sets().items()
        for mode in ("full", "tiled")
    }


def format_ap(ap):
    return ", ".join(f"{name} {mode} {value:.3f}" for (name, mode), value in ap.items())


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluates after every "epoch" (`--eval_every` steps) and sums the training time."""

    def __init__(self):
        super().__init__()
        self.training_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.training_seconds += time.perf_counter() - self._start
        ap = evaluate(self.model)
        losses = ", ".join(f"{name} {logs[name]:.3f}" for name in self.model.loss_names)
        print(
            f"step {(epoch + 1) * self.params['steps']}: loss {logs['loss']:.3f} ({losses}), "
            f"training time {self.training_seconds:.0f} s; AP@0.5: {format_ap(ap)}",
            flush=True,
        )


def main():
    args = parse_args()
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()

    coco_model = kdet.zoo.load("ssd_mobilenet_v2_coco")
    ap = evaluate(coco_model, class_agnostic=True)
    print(f"before, COCO model, every detection a tree: AP@0.5: {format_ap(ap)}", flush=True)
    del coco_model

    model = kdet.zoo.load("ssd_mobilenet_v2_coco", num_classes=1)
    if args.freeze_batch_norm:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    ap = evaluate(model)
    print(f"before, num_classes=1 (new class head): AP@0.5: {format_ap(ap)}", flush=True)

    fine_tune(model, build_optimizer(args), args, start)


def build_optimizer(args):
    """`--optimizer` (SGD with momentum 0.9, or Adam) on the warm-up + cosine schedule, clipped
    to global norm 10."""
    schedule = warmup_cosine_schedule(args)
    if args.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, global_clipnorm=10.0)
    return keras.optimizers.Adam(schedule, global_clipnorm=10.0)


def warmup_cosine_schedule(args):
    """Linear warm-up to `--learning_rate` over `--warmup_steps`, then cosine decay to 0."""
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        args.steps - args.warmup_steps,
        warmup_target=args.learning_rate,
        warmup_steps=args.warmup_steps,
    )


def fine_tune(model, optimizer, args, start):
    """Trains on the deepforest tiles, evaluating every `--eval_every` steps; prints the time."""
    model.compile(optimizer=optimizer)
    callback = EvaluationCallback()
    model.fit(
        training_dataset(args.batch_size, args.seed, training_tiles(args.deepforest_wheel)),
        epochs=args.steps // args.eval_every,
        steps_per_epoch=args.eval_every,
        callbacks=[callback],
        verbose=0,
        shuffle=False,
    )
    steps = args.steps // args.eval_every * args.eval_every
    if args.save_dir:
        save_model(model, args.save_dir)
    print(
        f"fine-tuned {steps} steps of batch {args.batch_size} in {callback.training_seconds:.0f}"
        f" s ({callback.training_seconds / steps:.2f} s/step); total run time "
        f"{time.perf_counter() - start:.0f} s",
        flush=True,
    )


def save_model(model, folder):
    """Writes `config.json` and `model.weights.h5` of `model` into `folder`."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "config.json", "w", encoding="utf-8") as file:
        json.dump(keras.saving.serialize_keras_object(model), file, indent=2)
    model.save_weights(folder / "model.weights.h5")
    print(f"saved the fine-tuned model in {folder}", flush=True)


if __name__ == "__main__":
    main()
