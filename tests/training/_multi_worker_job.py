"""One worker of `test_multi_worker.py`: trains a tiny SSD under MultiWorkerMirroredStrategy.

Run with TF_CONFIG set; argv: model_dir, output .npz path, number of steps.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kdet  # noqa: E402
import tiny_ssd_extractor  # noqa: E402  (tests/ is on PYTHONPATH)
from kdet.training import train  # noqa: E402

IMAGE_SIZE = 64


def main(model_dir, output_path, num_steps):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras.utils.set_random_seed(0)  # the same initial weights on every worker
    with strategy.scope():
        model = kdet.SSD(
            num_classes=2,
            feature_extractor=tiny_ssd_extractor.NAME,
            image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
            anchor_generator=kdet.layers.SSDAnchorGenerator(
                num_layers=2, min_scale=0.2, max_scale=0.6
            ),
        )
        model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    images, y = kdet.datasets.shapes(8, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices((images.astype("float32"), y)).batch(4).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    summary = train(model, dataset.with_options(options), model_dir, num_steps,
                    checkpoint_every_n=2, verbose=0)
    np.savez(output_path, *[w.numpy() for w in model.weights], final_step=summary["final_step"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
