"""The checks every feature extractor goes through: it learns in a detector, and it saves.

One battery for all extractors (kdet's and the wrappers of users' backbones), so a new
extractor costs its test file a few lines:

```python
from extractor_battery import assert_ssd_extractor_learns

def test_learns():
    assert_ssd_extractor_learns(MyExtractor(depth_multiplier=0.25))
```

**Learning** (`assert_ssd_extractor_learns`, `assert_faster_rcnn_extractor_learns`): a tiny
detector around the extractor, from scratch, fits `NUM_IMAGES` synthetic shapes images (one
class, `IMAGE_SIZE` px, 1–2 shapes of 20–60% of the side) in `STEPS` steps of batch
`BATCH_SIZE` (Adam, gradient norm clipped at 10): the total loss of the last epoch must be
below `LOSS_RATIO` of the first epoch's and the COCO mAP@0.5 on those images must reach
`min_map_50` (0.4 by default; an untrained detector scores ~0.0). It checks that gradients
reach the whole extractor and that its feature maps carry what the heads need — the
meta-architectures' own tests (tests/models/*/test_*_training.py) check generalization to
held-out images, which a 2-core CI cannot afford per extractor. Before evaluation the
batch-norm statistics are recomputed on the training images (`recalibrate_batch_norms`: the
TF OD API's extractors use momentum 0.997–0.9997, whose moving averages are still near their
initial values after a short run, so an untouched model would detect nothing in inference
mode however well it fits). Build the extractor with trainable batch norms
(`batch_norm_trainable=True` for Faster R-CNN extractors, whose TF OD API default freezes
them: with frozen initial statistics a deep body does not fit in this budget). Measured with
SSD MobileNetV2 (depth 0.25): last/first epoch loss 0.02, mAP@0.5 0.58 (0.75 with another
batch order); Faster R-CNN MobileNetV2 (depth 0.25): loss ratio 0.49, mAP@0.5 0.72 (0.54).

The battery seeds the shapes and the training, not the detector's initial weights, which the
caller's extractor (and the detector built around it) already has: call
`keras.utils.set_random_seed` before building the extractor, or the result depends on what ran
before in the process (the suite's two workers run files in varying orders).

**Saving** (`assert_keras_round_trip`): the detector saved as `.keras` and loaded back gives
the same raw outputs and detections.
"""

import keras
import numpy as np
import tensorflow as tf

import kdet
import kdet.datasets
from kdet.evaluation import compute_coco_metrics
from kdet.layers import FixedShapeResizer
from kdet.layers import GridAnchorGenerator
from kdet.layers import MultiscaleGridAnchorGenerator
from kdet.layers import SSDAnchorGenerator
from kdet.targets import HardExampleMiner
from kdet.training import FusedAdam

IMAGE_SIZE = 96
NUM_CLASSES = 1
MAX_BOXES = 2
BATCH_SIZE = 8
NUM_IMAGES = 16
STEPS = 150
EPOCHS = 5
LOSS_RATIO = 0.6
MAP_KEY = "DetectionBoxes_Precision/mAP@.50IOU"


def _shapes(num_images, seed, image_size):
    return kdet.datasets.shapes(
        num_images, image_size, seed=seed, max_boxes=MAX_BOXES, min_size=int(0.2 * image_size),
        max_size=int(0.6 * image_size), num_classes=NUM_CLASSES,
    )


def _num_feature_maps(extractor, image_size):
    """How many feature maps `extractor` gives for `image_size`² images (one forward pass)."""
    images = tf.zeros((1, image_size, image_size, 3))
    return len(extractor(extractor.preprocess(images)))


def tiny_ssd(extractor, image_size=IMAGE_SIZE, **kwargs):
    """An SSD around `extractor` for the shapes of this battery: one anchor generator layer
    per feature map, scales 0.15–0.7 (the shapes span 20–60% of the image)."""
    num_layers = _num_feature_maps(extractor, image_size)
    kwargs.setdefault("anchor_generator", SSDAnchorGenerator(
        num_layers=num_layers, min_scale=0.15, max_scale=0.7, aspect_ratios=(1.0, 2.0, 0.5),
        reduce_boxes_in_lowest_layer=False,
    ))
    # Top-k mining, as tests/models/ssd/test_ssd_training.py (the NMS-based one is slow).
    kwargs.setdefault("hard_example_miner", HardExampleMiner(iou_threshold=1.0))
    return kdet.SSD(
        num_classes=NUM_CLASSES, feature_extractor=extractor,
        image_resizer=FixedShapeResizer(image_size, image_size), **kwargs,
    )


def tiny_faster_rcnn(extractor, image_size=IMAGE_SIZE, **kwargs):
    """A Faster R-CNN around `extractor` with few proposals and anchors of the shapes'
    sizes: 16–64 px (32 px at 3 scales and 3 aspect ratios) on the extractor's stride, or for
    FPN extractors 4 strides on each level."""
    if "first_stage_anchor_generator" not in kwargs and "region_proposal_network" not in kwargs:
        kwargs["first_stage_anchor_generator"] = _tiny_anchors(extractor)
    kwargs.setdefault("first_stage_max_proposals", 32)
    kwargs.setdefault("second_stage_batch_size", 16)
    kwargs.setdefault("first_stage_minibatch_size", 64)
    return kdet.FasterRCNN(
        num_classes=NUM_CLASSES, feature_extractor=extractor,
        image_resizer=FixedShapeResizer(image_size, image_size), **kwargs,
    )


def _tiny_anchors(extractor):
    if extractor.is_fpn:
        return MultiscaleGridAnchorGenerator(
            extractor.fpn_min_level, extractor.fpn_max_level, anchor_scale=4.0,
            aspect_ratios=(0.5, 1.0, 2.0), scales_per_octave=1,
        )
    stride = extractor.first_stage_features_stride
    return GridAnchorGenerator(
        scales=(0.5, 1.0, 2.0), aspect_ratios=(0.5, 1.0, 2.0), base_anchor_size=(32, 32),
        anchor_stride=(stride, stride), anchor_offset=(stride // 2, stride // 2),
    )


def recalibrate_batch_norms(model, images, batch_size=BATCH_SIZE):
    """Sets every trainable batch norm's moving mean and variance to the average of its batch
    statistics over `images` (run in training mode, nothing else updated)."""
    batch_norms = [
        layer for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    if not batch_norms:
        return
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)]
            for layer in batch_norms]
    momenta = [layer.momentum for layer in batch_norms]
    batches = range(0, len(images), batch_size)
    try:
        for layer in batch_norms:
            layer.momentum = 0.0  # the moving statistics become this batch's
        for start in batches:
            model(images[start:start + batch_size], training=True)
            for total, layer in zip(sums, batch_norms):
                total[0] += layer.moving_mean.numpy()
                total[1] += layer.moving_variance.numpy()
    finally:
        for layer, momentum in zip(batch_norms, momenta):
            layer.momentum = momentum
    for (mean, variance), layer in zip(sums, batch_norms):
        layer.moving_mean.assign(mean / len(batches))
        layer.moving_variance.assign(variance / len(batches))


def fit_shapes(model, image_size=IMAGE_SIZE, steps=STEPS, learning_rate=1e-3, seed=0):
    """Trains `model` from scratch on `NUM_IMAGES` fixed shapes images for `steps` steps;
    returns `(the loss of each of 5 epochs, COCO metrics on those images)`."""
    keras.utils.set_random_seed(seed)
    images, y = _shapes(NUM_IMAGES, seed, image_size)
    model.compile(optimizer=FusedAdam(learning_rate, global_clipnorm=10.0))
    dataset = tf.data.Dataset.from_tensor_slices((images, y)).repeat().batch(BATCH_SIZE)
    history = model.fit(dataset, steps_per_epoch=steps // EPOCHS, epochs=EPOCHS, verbose=0)
    recalibrate_batch_norms(model, images)
    predictions = model.predict(images, batch_size=BATCH_SIZE, verbose=0)
    metrics = compute_coco_metrics(
        y, predictions, label_map=kdet.datasets.shapes_label_map(NUM_CLASSES)
    )
    return history.history["loss"], metrics


def _assert_learns(model, image_size, min_map_50, steps, learning_rate):
    losses, metrics = fit_shapes(model, image_size, steps, learning_rate)
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < LOSS_RATIO * losses[0], losses
    assert metrics[MAP_KEY] >= min_map_50, metrics[MAP_KEY]
    return losses, metrics


def assert_ssd_extractor_learns(extractor, min_map_50=0.4, image_size=IMAGE_SIZE, steps=STEPS,
                                learning_rate=3e-3, **ssd_kwargs):
    """`extractor` in a tiny SSD (`tiny_ssd`) fits shapes; returns `(losses, metrics)`."""
    return _assert_learns(tiny_ssd(extractor, image_size, **ssd_kwargs), image_size,
                          min_map_50, steps, learning_rate)


def assert_faster_rcnn_extractor_learns(extractor, min_map_50=0.4, image_size=IMAGE_SIZE,
                                        steps=STEPS, learning_rate=1e-3, **faster_rcnn_kwargs):
    """`extractor` in a tiny Faster R-CNN (`tiny_faster_rcnn`) fits shapes; returns
    `(losses, metrics)`."""
    return _assert_learns(tiny_faster_rcnn(extractor, image_size, **faster_rcnn_kwargs),
                          image_size, min_map_50, steps, learning_rate)


def assert_keras_round_trip(model, tmp_path, image_size=IMAGE_SIZE):
    """`model` (a kdet detector) saved as `.keras` and loaded gives the same raw outputs
    (≤ 1e-6) and the same detections; returns the loaded model."""
    images = _shapes(2, 7, image_size)[0]
    expected_raw = model(images, training=False)
    expected = model.predict_on_batch(images)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert type(loaded.feature_extractor) is type(model.feature_extractor)
    raw = loaded(images, training=False)
    for key in expected_raw:
        np.testing.assert_allclose(
            np.asarray(raw[key]), np.asarray(expected_raw[key]), atol=1e-6, err_msg=key
        )
    detections = loaded.predict_on_batch(images)
    for key in ("boxes", "confidences", "labels", "num_detections"):
        np.testing.assert_allclose(
            np.asarray(detections[key]), np.asarray(expected[key]), atol=1e-5, err_msg=key
        )
    return loaded
