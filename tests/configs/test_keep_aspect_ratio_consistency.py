"""A `keep_aspect_ratio_resizer` model sees the same pixels in `fit`, `kdet eval` and `predict`.

The TF OD API resizes each image once (`resize_to_range`), pads only with
`pad_to_max_dimension`, and tells the model each image's `true_image_shape`. kdet once resized
in `tf.data` to the padded size and then again in the model, so training saw a smaller image
(and mostly padding) than prediction. Here a tiny Faster R-CNN (min 48, max 80) trains,
evaluates and predicts on a 60×120 (2:1) and a 100×75 photo; what reaches its feature
extractor is compared with an independent `resize_to_range` written from the TF OD API's
description (TF1 `resize_images`, bilinear, no half-pixel centres).
"""

import numpy as np
import pytest
import tensorflow as tf
import test_model_builder  # noqa: F401  (registers config_test_tiny_two_stage)

import kdet
from kdet.configs import eval_dataset
from kdet.configs import load_pipeline
from kdet.configs import train_dataset
from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord

MIN_DIMENSION, MAX_DIMENSION = 48, 80
# (height, width) of the photos and one box each, yxyx pixels of the photo.
PHOTOS = {(60, 120): [12.0, 30.0, 48.0, 90.0], (100, 75): [20.0, 10.0, 70.0, 60.0]}
LABEL_MAP = {1: "thing"}


_CONFIG = """
model {
  faster_rcnn {
    num_classes: 1
    image_resizer {
      keep_aspect_ratio_resizer { min_dimension: 48 max_dimension: 80 PAD }
    }
    feature_extractor { type: 'config_test_tiny_two_stage' first_stage_features_stride: 8 }
    first_stage_anchor_generator {
      grid_anchor_generator {
        height: 32 width: 32 height_stride: 8 width_stride: 8
        scales: [0.5, 1.0] aspect_ratios: [1.0]
      }
    }
    first_stage_max_proposals: 10
    initial_crop_size: 4
    maxpool_kernel_size: 2
    maxpool_stride: 2
    second_stage_box_predictor { mask_rcnn_box_predictor { } }
    second_stage_batch_size: 4
    second_stage_post_processing {
      batch_non_max_suppression { max_total_detections: 5 }
      score_converter: SOFTMAX
    }
  }
}
train_config {
  batch_size: 2
  num_steps: 1
  optimizer {
    momentum_optimizer {
      learning_rate { constant_learning_rate { learning_rate: 0.0 } }
      momentum_optimizer_value: 0.9
    }
  }
}
train_input_reader {
  tf_record_input_reader { input_path: "FOLDER/photos.record" }
  label_map_path: "FOLDER/label_map.pbtxt"
  shuffle: false  # every batch holds both photos (shuffled, one may come twice)
}
eval_config { batch_size: 2 }
eval_input_reader {
  tf_record_input_reader { input_path: "FOLDER/photos.record" }
  label_map_path: "FOLDER/label_map.pbtxt"
  shuffle: false
}
"""


def _photos():
    rng = np.random.default_rng(0)
    return {size: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in PHOTOS}


def tfod_resize_to_range(image, min_dimension, max_dimension, pad_to_max_dimension):
    """The TF OD API's `resize_to_range` as its docs and code describe it: `(image, true
    shape)`, image float32 `[h, w, 3]` (padded to max² with zeros when asked)."""
    height, width = image.shape[:2]
    large = min_dimension / min(height, width)
    size = [int(round(height * large)), int(round(width * large))]
    if max(size) > max_dimension:
        small = max_dimension / max(height, width)
        size = [int(round(height * small)), int(round(width * small))]
    resized = tf.compat.v1.image.resize_images(
        tf.cast(image, tf.float32), size, method=tf.compat.v1.image.ResizeMethod.BILINEAR,
        align_corners=False,
    ).numpy()
    if pad_to_max_dimension:
        padded = np.zeros([max_dimension, max_dimension, 3], np.float32)
        padded[: size[0], : size[1]] = resized
        resized = padded
    return resized, tuple(size)


@pytest.fixture(params=[True, False], ids=["pad_to_max_dimension", "no_padding"])
def pipeline(request, tmp_path):
    examples = [
        create_example_from_arrays(photo, np.array([PHOTOS[size]]), np.array([1]), LABEL_MAP,
                                   box_format="yxyx", image_format="png")
        for size, photo in _photos().items()
    ]
    write_tfrecord(examples, tmp_path / "photos.record")
    (tmp_path / "label_map.pbtxt").write_text("item { id: 1 name: 'thing' }\n")
    pad = "pad_to_max_dimension: true" if request.param else ""
    text = _CONFIG.replace("FOLDER", str(tmp_path)).replace("PAD", pad)
    (tmp_path / "pipeline.config").write_text(text)
    pipeline = load_pipeline(tmp_path / "pipeline.config")
    pipeline.model.compile(optimizer=pipeline.optimizer, run_eagerly=True)
    pipeline.pad_to_max_dimension = request.param
    return pipeline


def _spy(model):
    """Records what the feature extractor is given and the first stage's content fractions
    and ground truth frame, call by call."""
    seen = []
    extractor = model.feature_extractor
    preprocess = extractor.preprocess
    first_stage = model._first_stage
    forward_train = model.forward_train

    def preprocess_spy(images):
        seen.append({"images": np.asarray(images)})
        return preprocess(images)

    def first_stage_spy(images, training):
        outputs = first_stage(images, training)
        seen[-1]["scale"] = np.broadcast_to(
            np.asarray(outputs["scale"]), (seen[-1]["images"].shape[0], 2)
        )
        return outputs

    def forward_train_spy(images, gt_boxes, gt_labels, training):
        outputs = forward_train(images, gt_boxes, gt_labels, training)
        seen[-1]["gt_frame"] = np.asarray(outputs["gt_frame"])
        return outputs

    extractor.preprocess = preprocess_spy
    model._first_stage = first_stage_spy
    model.forward_train = forward_train_spy
    return seen


def _inputs_per_photo(calls):
    """`{(content_h, content_w): (padded frame [H, W, 3], gt_frame or None)}` from the spied
    calls: each image's content size is its content fraction times the padded size."""
    inputs = {}
    for call in calls:
        frame_size = np.array(call["images"].shape[1:3])
        for index, (image, scale) in enumerate(zip(call["images"], call["scale"])):
            content = tuple(int(v) for v in np.round(scale * frame_size))
            gt = call["gt_frame"][index] if "gt_frame" in call else None
            inputs[content] = (image, gt)
    return inputs


def _check(inputs, pipeline, where, predict=False):
    photos = _photos()
    expected_sizes = {(60, 120): (40, 80), (100, 75): (64, 48)}
    assert sorted(inputs) == sorted(expected_sizes.values()), (
        f"{where}: content sizes {sorted(inputs)}, the TF OD API's are "
        f"{sorted(expected_sizes.values())}"
    )
    for photo_size, content in expected_sizes.items():
        frame, gt = inputs[content]
        expected, true_shape = tfod_resize_to_range(
            photos[photo_size], MIN_DIMENSION, MAX_DIMENSION, pipeline.pad_to_max_dimension
        )
        assert true_shape == content
        height, width = content
        np.testing.assert_allclose(
            frame[:height, :width], expected[:height, :width], atol=1e-3,
            err_msg=f"{where}: pixels of the {photo_size} photo",
        )
        if pipeline.pad_to_max_dimension:
            # Padding exactly where the TF OD API pads: bottom/right up to max².
            assert frame.shape[:2] == (MAX_DIMENSION, MAX_DIMENSION), where
        elif predict:
            assert frame.shape[:2] == content, where
        # Whatever pads the frame (the batch's largest image) is zeros outside the content.
        assert not frame[height:].any() and not frame[:, width:].any(), where
        if gt is not None:
            # rel_yxyx of the photo, moved into the padded frame (TF OD API's realigned boxes).
            box = np.array(PHOTOS[photo_size]) / np.tile(photo_size, 2)
            fraction = np.array(content) / np.array(frame.shape[:2])
            np.testing.assert_allclose(gt[0], box * np.tile(fraction, 2), atol=1e-5,
                                       err_msg=f"{where}: ground truth of the {photo_size} photo")


def test_fit_eval_and_predict_see_the_tfod_api_resize(pipeline):
    model = pipeline.model
    calls = _spy(model)
    model.fit(train_dataset(pipeline, seed=1), epochs=1, steps_per_epoch=1, verbose=0)
    _check(_inputs_per_photo(calls[-1:]), pipeline, "fit")

    calls.clear()
    evaluator = kdet.evaluation.COCOEvaluator(eval_dataset(pipeline), label_map=LABEL_MAP)
    evaluator.evaluate(model)
    _check(_inputs_per_photo(calls), pipeline, "kdet eval")

    calls.clear()
    for photo in _photos().values():
        model.predict(photo, verbose=0)
    _check(_inputs_per_photo(calls), pipeline, "predict", predict=True)


def test_groundtruth_and_predictions_are_in_pixels_of_the_resized_content(pipeline):
    batch = next(iter(eval_dataset(pipeline)))
    images, y = batch[0], batch[1]
    assert isinstance(images, dict)
    shapes = images["true_image_shape"].numpy().tolist()
    assert shapes == [[40, 80], [64, 48]]
    for index, (photo_size, box) in enumerate(PHOTOS.items()):
        factor = np.array(shapes[index]) / np.array(photo_size)
        np.testing.assert_allclose(
            y["boxes"][index, 0].numpy(), np.array(box) * np.tile(factor, 2), atol=1e-4
        )
    relative, _ = pipeline.model.groundtruth_to_relative(images, y)
    for index, (photo_size, box) in enumerate(PHOTOS.items()):
        np.testing.assert_allclose(
            relative[index, 0].numpy(), np.array(box) / np.tile(photo_size, 2), atol=1e-5
        )
    # Detections of the dict come back in the same pixels: inside each image's content.
    detections = pipeline.model.predict_on_batch(images)
    for index, (height, width) in enumerate(shapes):
        boxes = np.asarray(detections["boxes"][index])
        boxes = boxes[np.asarray(detections["labels"][index]) > 0]
        assert (boxes[:, [0, 2]] <= height + 1e-4).all()
        assert (boxes[:, [1, 3]] <= width + 1e-4).all()


def test_resize_to_range_sizes_match_the_tfod_api():
    resizer = kdet.layers.KeepAspectRatioResizer(600, 1024, pad_to_max_dimension=True)
    for height, width in [(1000, 1333), (500, 1000), (1000, 500), (600, 600), (427, 640),
                          (1707, 1000), (10, 4000)]:
        image = np.zeros([height, width, 3], np.uint8)
        large = 600 / min(height, width)
        size = (round(height * large), round(width * large))
        if max(size) > 1024:
            small = 1024 / max(height, width)
            size = (round(height * small), round(width * small))
        resized, true_shape = resizer.resize_one(tf.constant(image))
        assert tuple(true_shape.numpy()) == size, (height, width)
        assert resized.shape == (1024, 1024, 3)


def test_kdet_train_logs_images_and_resumes_on_resized_inputs(pipeline, tmp_path):
    # What `kdet train` runs: TensorBoard images of the first batch, then a resumed run that
    # builds the model from the dataset's (dict) element spec.
    dataset = train_dataset(pipeline, seed=1).repeat()
    run = tmp_path / "run"
    first = kdet.training.train(pipeline.model, dataset, run, num_steps=1, checkpoint_every_n=1,
                                log_images_every_n=1, verbose=0)
    assert first["final_step"] == 1
    resumed = load_pipeline(pipeline.source)
    model = resumed.model
    model.compile(optimizer=resumed.optimizer)
    second = kdet.training.train(model, dataset, run, num_steps=2, log_images_every_n=0,
                                 verbose=0)
    assert (second["start_step"], second["final_step"]) == (1, 2)


def test_padding_takes_the_per_channel_pad_value_and_round_trips():
    resizer = kdet.layers.KeepAspectRatioResizer(
        48, 80, pad_to_max_dimension=True, per_channel_pad_value=(10.0, 20.0, 30.0),
        resize_method="legacy_bilinear",  # the TF OD API's BILINEAR (what configs build)
    )
    photo = _photos()[(60, 120)]
    resized, true_shape = resizer.resize_one(tf.constant(photo))
    expected, _ = tfod_resize_to_range(photo, 48, 80, False)
    np.testing.assert_allclose(resized[:40, :80], expected, atol=1e-3)
    np.testing.assert_allclose(resized[40:], np.broadcast_to([10.0, 20.0, 30.0], (40, 80, 3)))
    again = kdet.layers.KeepAspectRatioResizer.from_config(resizer.get_config())
    assert again.per_channel_pad_value == (10.0, 20.0, 30.0)


def test_eval_draws_each_resized_image_without_its_padding(pipeline, tmp_path):
    evaluator = kdet.evaluation.COCOEvaluator(
        eval_dataset(pipeline), label_map=LABEL_MAP, log_dir=tmp_path / "eval",
        num_visualizations=2,
    )
    evaluator.evaluate(pipeline.model)
    sizes = [image.shape for image in evaluator.last_visualizations]
    assert sizes == [(40, 160, 3), (64, 96, 3)]
