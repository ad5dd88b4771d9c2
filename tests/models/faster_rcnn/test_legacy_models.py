"""Faster R-CNN files and code of the format before `RegionProposalNetwork` / `RoIHeads`: the
files of `tests/data/legacy_models/` (written by the code of then, see its README) load with
the same weights and predictions, and the older keyword arguments still build the model."""

import json
import pathlib
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tiny_two_stage_extractor  # also registers the extractors the files name

import kdet
from kdet.models.faster_rcnn import BoxClassifierHead
from kdet.models.faster_rcnn import RPNHead
from kdet.models.faster_rcnn import older_arguments

LEGACY = pathlib.Path(__file__).parents[2] / "data" / "legacy_models"
NAMES = ("faster_rcnn", "faster_rcnn_fpn")


def _older_config(name):
    """The model config of an older `.keras` file (its `config.json`)."""
    with zipfile.ZipFile(LEGACY / f"{name}.keras") as archive:
        return json.loads(archive.read("config.json"))["config"]


def _assert_same_predictions(model, name):
    expected = np.load(LEGACY / f"{name}.expected.npz")
    images = expected["images"]
    raw = model(images.astype("float32"))
    for key in ("proposals", "class_logits", "box_encodings"):
        # The same values, up to float rounding of another CPU (here they are bit-identical).
        np.testing.assert_allclose(raw[key], expected[f"raw_{key}"], rtol=0, atol=1e-5)
    detections = model.predict(images, verbose=0)
    for key in ("num_detections", "labels"):
        np.testing.assert_array_equal(detections[key], expected[f"detections_{key}"])
    for key in ("boxes", "confidences"):
        np.testing.assert_allclose(
            detections[key], expected[f"detections_{key}"], rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("name", NAMES)
def test_older_keras_files_load_with_the_same_predictions(name):
    model = keras.saving.load_model(LEGACY / f"{name}.keras")
    assert isinstance(model.region_proposal_network, kdet.models.faster_rcnn.RegionProposalNetwork)
    assert isinstance(model.roi_heads, kdet.models.faster_rcnn.RoIHeads)
    _assert_same_predictions(model, name)


@pytest.mark.parametrize("name", NAMES)
def test_older_weights_files_load_every_weight_at_its_new_place(name, tmp_path):
    model = kdet.FasterRCNN.from_config(_older_config(name))
    model.build((1, 64, 64, 3))
    model.load_weights(LEGACY / f"{name}.weights.h5")
    _assert_same_predictions(model, name)
    # Saved again: each older weight is at its new path, unchanged, and nothing else is there.
    model.save_weights(tmp_path / "new.weights.h5")
    moved = {older: path for path, older in older_arguments.older_weight_paths(model).items()}
    with h5py.File(LEGACY / f"{name}.weights.h5") as older, h5py.File(
        tmp_path / "new.weights.h5"
    ) as new:
        older_arrays = _datasets(older)
        new_arrays = _datasets(new)
        renamed = {}
        for path, value in older_arrays.items():
            for old_prefix, new_prefix in moved.items():
                if path.startswith(old_prefix + "/"):
                    path = new_prefix + path[len(old_prefix):]
            renamed[path] = value
        assert sorted(renamed) == sorted(new_arrays)
        for path, value in renamed.items():
            np.testing.assert_array_equal(new_arrays[path], value, err_msg=path)
    # What older_weight_paths says are the new places are where Keras now stores the heads.
    assert all(any(key.startswith(path + "/") for key in new_arrays) for path in moved.values())


def _datasets(h5_file):
    """`{path: array}` of every dataset of an open h5 file."""
    arrays = {}
    h5_file.visititems(
        lambda path, item: arrays.__setitem__(path, item[()])
        if isinstance(item, h5py.Dataset) else None
    )
    return arrays


def test_new_files_are_left_alone_by_the_older_paths(tmp_path):
    model = keras.saving.load_model(LEGACY / "faster_rcnn.keras")
    path = tmp_path / "model.keras"
    model.save(path)
    _assert_same_predictions(keras.saving.load_model(path), "faster_rcnn")


def test_older_keyword_arguments_configure_the_default_components():
    extractor = tiny_two_stage_extractor.ConfigTestTinyTwoStageExtractor(
        first_stage_features_stride=8
    )
    model = kdet.FasterRCNN(
        num_classes=3,
        feature_extractor=extractor,
        first_stage_box_predictor_depth=16,
        first_stage_box_predictor_kernel_regularizer=keras.regularizers.L2(0.01),
        first_stage_atrous_rate=2,
        first_stage_max_proposals=20,
        first_stage_minibatch_size=32,
        initial_crop_size=6,
        second_stage_batch_size=8,
        add_groundtruth_to_proposals=False,
        score_threshold=0.3,
        max_detections=9,
    )
    rpn, roi_heads = model.region_proposal_network, model.roi_heads
    assert (rpn.rpn_head.depth, rpn.rpn_head.dilation_rate) == (16, 2)
    assert rpn.rpn_head.conv_hyperparams == RPNHead.default_conv_hyperparams().replace(
        kernel_regularizer=keras.regularizers.L2(0.01)
    )
    assert (rpn.max_proposals, rpn.minibatch_size) == (20, 32)
    assert rpn.anchor_generator.get_config()["anchor_stride"] == (8.0, 8.0)
    assert roi_heads.roi_cropper.get_config()["crop_size"] == 6
    assert (roi_heads.batch_size, roi_heads.add_groundtruth_to_proposals) == (8, False)
    nms = roi_heads.non_max_suppression
    assert (nms.score_threshold, nms.max_detections, nms.score_converter) == (0.3, 9, "softmax")
    assert (nms.iou_threshold, nms.max_detections_per_class) == (0.6, 100)
    # The components' own defaults for everything not given (one default table).
    assert rpn.localization_loss_weight == roi_heads.localization_loss_weight == 2.0
    with pytest.raises(ValueError, match="either second_stage_non_max_suppression or"):
        kdet.FasterRCNN(
            3, extractor, iou_threshold=0.5,
            second_stage_non_max_suppression=kdet.layers.MultiClassNonMaxSuppression(),
        )  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"roi_heads is given: configure it there, not with the older FasterRCNN "
        r"arguments of its components \(initial_crop_size, second_stage_batch_size\)",
    ):
        kdet.FasterRCNN(
            3, extractor, roi_heads=kdet.models.faster_rcnn.RoIHeads(3),
            initial_crop_size=6, second_stage_batch_size=8, first_stage_max_proposals=20,
        )  # fmt: skip


def test_older_configs_before_conv_hyperparams_still_load():
    config = _older_config("faster_rcnn")
    del config["first_stage_box_predictor_conv_hyperparams"]
    config["first_stage_box_predictor_kernel_regularizer"] = {
        "module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01},
        "registered_name": None,
    }
    head = config["second_stage_box_predictor"]["config"]
    del head["fc_hyperparams"], head["share_box_across_classes"]
    head["kernel_regularizer"] = None
    del config["second_stage_non_max_suppression"], config["second_stage_classification_loss"]
    config.update(score_threshold=0.0, iou_threshold=0.5, max_detections_per_class=100,
                  max_detections=100)  # fmt: skip
    revived = kdet.FasterRCNN.from_config(config)
    rpn_head = revived.region_proposal_network.rpn_head
    assert rpn_head.conv_hyperparams == RPNHead.default_conv_hyperparams().replace(
        kernel_regularizer=keras.regularizers.L2(0.01)
    )
    box_predictor = revived.roi_heads.box_predictor
    assert box_predictor.fc_hyperparams == BoxClassifierHead.default_fc_hyperparams()
    nms = revived.roi_heads.non_max_suppression
    assert (nms.iou_threshold, nms.score_threshold) == (0.5, 0.0)
    assert isinstance(
        revived.roi_heads.classification_loss, kdet.losses.WeightedSoftmaxClassificationLoss
    )
    revived.build((None, 64, 64, 3))
