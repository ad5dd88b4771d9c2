"""Input-pipeline throughput: TFRecords → decode → augment → resize → pad → batch.

Writes photo-like 640x480 JPEG records (crops of the bundled quokka and deepforest images, with
1..10 boxes each) into a few shards in a temporary directory, then measures images/s of
`kdet.data.read_tfrecords` under several settings side by side, and of single stages (Keras
box-aware layers against the `tf.image` code kdet uses). Results go to benchmarks/README.md.

Usage: python benchmarks/input_pipeline.py [--num-images 256] [--epochs 2] [--rounds 3]
"""

import argparse
import os
import pathlib
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from kdet.data.augmentation import random_horizontal_flip  # noqa: E402
from kdet.data.input_pipeline import read_tfrecords  # noqa: E402
from kdet.data.input_pipeline import resize_image_and_boxes  # noqa: E402
from kdet.data.tf_example import create_tf_example  # noqa: E402
from kdet.data.tf_example import encode_image  # noqa: E402

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / "kdet" / "datasets" / "data"
HEIGHT, WIDTH = 480, 640
AUGMENTATION = [
    {"random_horizontal_flip": {}},
    {"ssd_random_crop": {}},
    {"random_adjust_brightness": {"max_delta": 0.2}},
]


def photo_like_images(count, rng):
    """Yields `count` 480x640 uint8 photos: random crops of the bundled real images."""
    sources = [
        Image.open(DATA_DIR / "quokka.jpg").convert("RGB"),
        Image.open(DATA_DIR / "deepforest" / "OSBS_029.png").convert("RGB"),
        Image.open(DATA_DIR / "deepforest" / "SOAP_061.png").convert("RGB"),
    ]
    for index in range(count):
        source = sources[index % len(sources)]
        width, height = source.size
        crop_width = int(width * rng.uniform(0.5, 1.0))
        crop_height = int(crop_width * HEIGHT / WIDTH)
        crop_height = min(crop_height, height)
        left = int(rng.integers(0, width - crop_width + 1))
        top = int(rng.integers(0, height - crop_height + 1))
        crop = source.crop((left, top, left + crop_width, top + crop_height))
        yield np.asarray(crop.resize((WIDTH, HEIGHT), Image.BILINEAR))


def write_records(directory, num_images, num_shards=4, seed=0):
    rng = np.random.default_rng(seed)
    writers = [
        tf.io.TFRecordWriter(os.path.join(directory, f"train-{s:05d}-of-{num_shards:05d}"))
        for s in range(num_shards)
    ]
    total_bytes = 0
    for index, image in enumerate(photo_like_images(num_images, rng)):
        num_boxes = int(rng.integers(1, 11))
        corners = np.sort(rng.uniform(0.0, 1.0, (num_boxes, 2, 2)), axis=1)
        boxes = np.concatenate([corners[:, 0], corners[:, 1]], axis=1)  # ymin, xmin, ymax, xmax
        encoded = encode_image(image, "jpeg", quality=90)
        total_bytes += len(encoded)
        example = create_tf_example(
            encoded,
            HEIGHT,
            WIDTH,
            boxes,
            [1] * num_boxes,
            ["object"] * num_boxes,
            filename=f"{index:06d}.jpg",
        )
        writers[index % num_shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return total_bytes / num_images


def timed_epochs(dataset, epochs):
    """Returns images/s over `epochs` passes of `dataset`."""
    count = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for images, *_ in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def print_table(title, datasets, epochs, rounds):
    """Warms every dataset up, then times them in interleaved rounds (this 2-core machine is
    noisy) and prints the median and range of images/s."""
    for dataset in datasets.values():
        timed_epochs(dataset, 1)
    rates = {name: [] for name in datasets}
    for _ in range(rounds):
        for name, dataset in datasets.items():
            rates[name].append(timed_epochs(dataset, epochs))
    print(f"\n| {title} | images/s (median) | range |\n|---|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {np.median(values):.0f} | {min(values):.0f}–{max(values):.0f} |")


def pipeline_settings():
    common = dict(batch_size=32, image_size=(320, 320), shuffle=True, num_epochs=1)
    full = dict(common, num_readers=4, augmentation=AUGMENTATION)
    return [
        ("read + decode + flip/ssd_crop/brightness + resize 320 + pad + batch 32", full),
        ("same, num_readers=1", dict(full, num_readers=1)),
        ("same, no augmentation", dict(common, num_readers=4)),
        (
            "same, augmentation += random_distort_color",
            dict(full, augmentation=AUGMENTATION + [{"random_distort_color": {}}]),
        ),
        ("same, pad_to_aspect_ratio=True", dict(full, pad_to_aspect_ratio=True)),
        ("same, seed=0 (reproducible: deterministic order, stateless ops)", dict(full, seed=0)),
    ]


def stage_settings():
    """Single stages on decoded 640x480 images: Keras layers vs the tf.image code kdet uses."""
    keras_flip = keras.layers.RandomFlip("horizontal", bounding_box_format="rel_yxyx")
    keras_resize = keras.layers.Resizing(
        320, 320, pad_to_aspect_ratio=True, bounding_box_format="rel_yxyx"
    )

    def keras_input(image, boxes, labels):
        return {
            "images": tf.cast(image, tf.float32),
            "bounding_boxes": {"boxes": boxes, "labels": labels},
        }

    def small(image):
        # Every variant ends at 320x320 float32 so that batching costs the same.
        return tf.image.resize(tf.cast(image, tf.float32), (320, 320))

    return [
        ("resize to 320 only (reference)", lambda image, boxes, labels: small(image)),
        (
            "keras.layers.RandomFlip(bounding_box_format=) + resize",
            lambda *example: small(keras_flip(keras_input(*example))["images"]),
        ),
        (
            "kdet random_horizontal_flip + resize",
            lambda *example: small(random_horizontal_flip(*example)[0]),
        ),
        (
            "keras.layers.Resizing(320, 320, pad_to_aspect_ratio=True, bounding_box_format=)",
            lambda *example: keras_resize(keras_input(*example))["images"],
        ),
        (
            "kdet resize_image_and_boxes(pad_to_aspect_ratio=True)",
            lambda image, boxes, labels: resize_image_and_boxes(image, boxes, (320, 320), True)[0],
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        mean_bytes = write_records(directory, args.num_images)
        pattern = os.path.join(directory, "train-*")
        print(
            f"# {args.num_images} JPEG records {WIDTH}x{HEIGHT} (mean {mean_bytes / 1024:.0f} KiB) "
            f"in 4 shards; per setting {args.rounds} rounds of {args.epochs} epochs after a "
            f"warm-up epoch\n# {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"TF {tf.__version__}, Keras {keras.__version__}"
        )
        pipelines = {
            name: read_tfrecords(pattern, **settings) for name, settings in pipeline_settings()
        }
        print_table("read_tfrecords setting", pipelines, args.epochs, args.rounds)
        image, y = next(iter(read_tfrecords(pattern, shuffle=False, max_num_boxes=10)))

    real = y["labels"] >= 0
    boxes = tf.boolean_mask(y["boxes"], real) / [HEIGHT, WIDTH, HEIGHT, WIDTH]
    labels = tf.boolean_mask(y["labels"], real)
    # The example is a dataset element, not a captured constant that graph optimization could
    # fold away.
    examples = tf.data.Dataset.from_tensors((image, boxes, labels)).repeat(4 * args.num_images)
    stages = {
        name: examples.map(function, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(32)
        .prefetch(tf.data.AUTOTUNE)
        for name, function in stage_settings()
    }
    print_table(
        "stage (decoded 640x480 uint8 image in, map + batch 32)", stages, args.epochs, args.rounds
    )


if __name__ == "__main__":
    main()
