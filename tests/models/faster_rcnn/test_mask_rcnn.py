"""`kdet.models.faster_rcnn.MaskRCNN` and `MaskHead`: shapes, saving, the mask loss by hand,
pasting, and the Mask R-CNN sample configs."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_two_stage_extractor  # noqa: F401 (registers config_test_tiny_two_stage)

import kdet
from kdet.configs.model_builder import build_model
from kdet.configs.text_format import parse_file
from kdet.models.faster_rcnn import MaskHead
from kdet.models.faster_rcnn import MaskRCNN
from kdet.models.faster_rcnn import RoIHeads
from kdet.models.faster_rcnn.mask_head import paste_masks

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "data" / "tfod_configs"


def _tiny_mask_rcnn(**kwargs):
    return MaskRCNN(
        2,
        "config_test_tiny_two_stage",
        image_resizer=kdet.layers.FixedShapeResizer(64, 64),
        roi_heads=RoIHeads(2, kdet.layers.CropAndResizeRoIPooler(8), batch_size=16),
        mask_head=MaskHead(2, mask_height=8, mask_width=8, conv_depth=8, name="mask_head"),
        **kwargs,
    )


def _data():
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3)).astype("uint8")
    boxes = np.array(
        [[[10, 10, 40, 40], [-1, -1, -1, -1]], [[5, 20, 30, 60], [30, 5, 60, 30]]], np.float32
    )
    labels = np.array([[1, -1], [2, 1]], np.int32)
    masks = np.zeros((2, 2, 64, 64), np.uint8)
    for b, n in zip(*np.nonzero(labels > 0)):
        y0, x0, y1, x1 = boxes[b, n].astype(int)
        masks[b, n, y0:y1, x0:x1] = 1
    return images, {"boxes": boxes, "labels": labels, "masks": masks}


@pytest.mark.parametrize(
    "arguments, features_shape, expected_shape, first_depth",
    [
        ({}, (5, 7, 7, 32), (5, 3, 15, 15), 256),
        ({"masks_are_class_agnostic": True, "num_conv_layers": 1}, (5, 7, 7, 32),
         (5, 1, 15, 15), None),
        # The TF OD API's automatic depth: 2 ** round((2 log2 1088 + 3 log2 3) / 5) = 32.
        ({"conv_depth": 0, "mask_height": 14, "mask_width": 14, "convolve_then_upsample": True},
         (5, 7, 7, 1088), (5, 3, 14, 14), 32),
    ],
)
def test_mask_head_shapes_and_config(arguments, features_shape, expected_shape, first_depth):
    head = MaskHead(3, **arguments)
    assert tuple(head(tf.zeros(features_shape)).shape) == expected_shape
    convolutions = [layer for layer in head.predictor_layers if hasattr(layer, "filters")]
    assert convolutions[-1].name == "MaskPredictor_last_conv2d"
    if first_depth:
        assert convolutions[0].filters == first_depth
        assert convolutions[0].name == "MaskPredictor_conv2d_0"  # the TF OD API's names
    restored = MaskHead.from_config(head.get_config())
    assert restored.get_config() == head.get_config()


def test_mask_head_refuses_flat_features():
    with pytest.raises(ValueError, match="flat features"):
        MaskHead(3)(tf.zeros([4, 32]))


def test_mask_loss_by_hand():
    model = _tiny_mask_rcnn(mask_loss_weight=4.0)
    mask_size = 2
    model.mask_head.mask_height = model.mask_head.mask_width = mask_size
    gt_masks = np.zeros((1, 2, 4, 4), np.uint8)
    gt_masks[0, 0, :, :2] = 1  # left half
    gt_masks[0, 1, :2, :] = 1  # top half
    logits = np.random.default_rng(1).normal(size=(1, 4, 2, mask_size, mask_size))
    outputs = {
        # The content fills the top half of the padded frame: RoI 0 covers all of it.
        "scale": tf.constant([[0.5, 1.0]]),
        "rois": tf.constant([[[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.5, 1.0],
                              [0.1, 0.1, 0.3, 0.3], [-1.0, -1.0, -1.0, -1.0]]]),
        "roi_matched_gt": tf.constant([[1, 0, -1, -1]]),
        "roi_cls_targets": tf.constant([[2, 1, 0, 0]]),
        "roi_weights": tf.constant([[1.0, 1.0, 1.0, 0.0]]),  # RoI 2: a sampled negative
        "mask_logits": tf.constant(logits, tf.float32),
    }
    loss = model.mask_loss_of(outputs, tf.constant(gt_masks), tf.ones([1, 2]))
    # crop_and_resize samples the box corners: RoI 0 (gt 1, top half) → [[1, 1], [0, 0]] with
    # the mask of class 2; RoI 1 (gt 0, left half) → [[1, 0], [1, 0]] with class 1's.
    pairs = [(logits[0, 0, 1], np.array([[1, 1], [0, 0]])),
             (logits[0, 1, 0], np.array([[1, 0], [1, 0]]))]
    total = sum(np.sum(np.log1p(np.exp(x)) - t * x) for x, t in pairs)
    np.testing.assert_allclose(float(loss), 4.0 * total / 8.0, rtol=1e-5)


def test_paste_masks_puts_each_mask_in_its_box():
    box_masks = tf.ones([1, 2, 3, 3])
    boxes = tf.constant([[[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 1.0]]])
    pasted = paste_masks(box_masks, boxes, 8, 8).numpy()[0]
    rows, cols = (np.arange(8) + 0.0) / 7.0, (np.arange(8) + 0.0) / 7.0
    inside = (rows[:, None] >= 0.25) & (rows[:, None] <= 0.75) & (cols >= 0.25) & (cols <= 0.75)
    np.testing.assert_allclose(pasted[0], inside.astype(np.float32), atol=1e-5)
    np.testing.assert_allclose(pasted[1][:4], 1.0, atol=1e-5)
    np.testing.assert_allclose(pasted[1][4:], 0.0, atol=1e-5)


def test_fit_predict_and_keras_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    images, y = _data()
    model = _tiny_mask_rcnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(images, y, epochs=1, verbose=0).history
    assert set(history) >= {"mask_loss", "box_classifier_class_loss", "rpn_box_loss"}
    assert np.isfinite(history["mask_loss"][0]) and history["mask_loss"][0] > 0
    predictions = model.predict(images, verbose=0)
    masks = predictions["masks"]
    assert masks.shape == (2, 100, 64, 64) and masks.dtype == np.float32
    assert 0.0 <= masks.min() and masks.max() <= 1.0
    padding = predictions["labels"] < 0
    assert np.all(masks[padding] == 0.0)
    assert predictions["box_masks"].shape == (2, 100, 8, 8)
    path = tmp_path / "mask_rcnn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, MaskRCNN) and restored.number_of_stages == 3
    np.testing.assert_allclose(restored.predict(images, verbose=0)["masks"], masks, atol=1e-5)
    # Images of two sizes: each image's masks, padded with zeros to the larger one.
    mixed = model.predict([np.asarray(images[0]), np.asarray(images[1])[:48, :40]], verbose=0)
    assert mixed["masks"].shape == (2, 100, 64, 64)
    assert np.all(mixed["masks"][1, :, 48:] == 0) and np.all(mixed["masks"][1, :, :, 40:] == 0)
    np.testing.assert_allclose(mixed["masks"][0], masks[0], atol=1e-5)
    with pytest.raises(ValueError, match="load_instance_masks: true in train_input_reader"):
        model.train_on_batch(images, {"boxes": y["boxes"], "labels": y["labels"]})
    with pytest.raises(ValueError, match="number_of_stages must be 3"):
        _tiny_mask_rcnn(number_of_stages=2)


def test_resized_inputs_read_masks_in_the_padded_frame():
    model = _tiny_mask_rcnn()
    inputs = {"resized_images": tf.zeros([1, 64, 64, 3]),
              "true_image_shape": tf.constant([[32, 64]])}
    extras = model.groundtruth_extras(inputs, {"masks": tf.zeros([1, 2, 64, 64], tf.uint8)})
    np.testing.assert_allclose(extras["gt_mask_window"], [[0.5, 1.0]])
    detections = model.predict_on_batch(inputs)
    assert detections["masks"].shape == (1, 100, 64, 64)


def test_mask_rcnn_sample_config_builds():
    # The other five (in ../shared/tfod_configs) build too; the sample config tests load them.
    config = parse_file(CONFIGS / "mask_rcnn_inception_v2_coco.config")
    model = build_model(next(field.value for field in config.fields if field.name == "model"))
    assert isinstance(model, MaskRCNN) and model.number_of_stages == 3
    head = model.mask_head
    assert (head.mask_height, head.conv_depth, head.num_conv_layers) == (15, 0, 2)
    assert model.mask_loss_weight == 4.0
