"""kdet.training.variable_names / select_trainable: readable, stable names and the TF OD API's
freeze_variables / update_trainable_variables regexes, checked by training a tiny SSD."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_ssd_extractor
from shapes_training import conv_bn_relu
from tiny_two_stage_extractor import ConfigTestTinyTwoStageExtractor

import kdet
from kdet.training import select_trainable
from kdet.training import variable_names
from kdet.training.variable_selection import VariableSelectionError

IMAGE_SIZE = 64


class TinyBatchNormSSDExtractor(kdet.feature_extractors.SSDFeatureExtractor):
    """Conv-BN-ReLU at strides 8 and 16 (as `tiny_ssd_extractor`, with batch norms)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.Sequential(conv_bn_relu(8, 4) + conv_bn_relu(8, 2))
        self.top = keras.Sequential(conv_bn_relu(8, 2))

    def preprocess(self, images):
        return images / 127.5 - 1.0

    def call(self, images, training=None):
        features = self.stem(images, training=training)
        return [features, self.top(features, training=training)]


def _ssd(extractor=tiny_ssd_extractor.NAME, **kwargs):
    model = kdet.SSD(
        num_classes=2,
        feature_extractor=extractor,
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=kdet.layers.SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
        **kwargs,
    )
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return model


def _fit(model, steps=3):
    """Trains `model` for a few SGD steps; returns `{name: (before, after)}` of every weight."""
    before = {name: variable.numpy().copy() for name, variable in variable_names(model).items()}
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    images, y = kdet.datasets.shapes(2 * steps, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=1)
    model.fit(images, y, batch_size=2, epochs=1, verbose=0)
    return {
        name: (before[name], variable.numpy()) for name, variable in variable_names(model).items()
    }


def _changed(weights):
    """Names of the weights `fit` changed. Every class head trains (all anchors have class
    targets); a box head only where an anchor matched a box."""
    return {name for name, (before, after) in weights.items() if not np.array_equal(before, after)}


def test_names_say_the_component_are_stable_and_cover_every_weight_once():
    first, second = _ssd(), _ssd()
    # Keras's own paths number unnamed layers per process: the second build's differ.
    assert [v.path for v in first.weights] != [v.path for v in second.weights]
    names = variable_names(first)
    assert list(names) == list(variable_names(second))
    assert [id(v) for v in names.values()] == [id(v) for v in first.weights]
    assert list(names)[:2] == ["feature_extractor/stem/conv2d/kernel",
                               "feature_extractor/stem/conv2d/bias"]
    assert {
        "feature_extractor/stem/conv2d_2/kernel",
        "feature_extractor/top/kernel",
        "box_predictor/BoxPredictor_1_class_head/BoxPredictor_1_ClassPredictor/bias",
    } <= set(names)
    assert {name.split("/")[0] for name in names} == {"feature_extractor", "box_predictor"}


def test_faster_rcnn_names_its_rpn_and_second_stage():
    model = kdet.FasterRCNN(
        num_classes=2,
        feature_extractor=ConfigTestTinyTwoStageExtractor(first_stage_features_stride=8),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        region_proposal_network=kdet.models.faster_rcnn.RegionProposalNetwork(
            kdet.layers.GridAnchorGenerator(
                scales=(1.0,), aspect_ratios=(1.0,), base_anchor_size=(32, 32),
                anchor_stride=(8, 8),
            ),
            rpn_head=kdet.models.faster_rcnn.RPNHead(1, depth=8),
            proposal_generator=kdet.layers.ProposalGenerator(max_proposals=8),
        ),
        roi_heads=kdet.models.faster_rcnn.RoIHeads(2, kdet.layers.CropAndResizeRoIPooler(4)),
    )
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    names = variable_names(model)
    assert len(names) == len(model.weights)
    assert {name.split("/")[0] for name in names} == {
        "feature_extractor", "region_proposal_network", "roi_heads"
    }
    assert {"feature_extractor/conv2d/kernel", "feature_extractor/conv2d_2/bias",
            "feature_extractor/head/kernel", "region_proposal_network/rpn_head/RPNConv/kernel",
            "region_proposal_network/rpn_head/ClassPredictor/bias",
            "roi_heads/box_predictor/ClassPredictor_dense/kernel"} <= set(names)


def test_frozen_feature_extractor_stays_bit_identical_while_the_predictor_trains():
    model = _ssd()
    trainable = select_trainable(model, freeze_variables=["feature_extractor/"])
    assert set(trainable) == {name for name in variable_names(model) if name.startswith("box_")}
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in trainable.values()}
    changed = _changed(_fit(model))
    assert changed <= set(trainable)  # the extractor's weights are bit-identical
    assert {name for name in trainable if "ClassPredictor" in name} <= changed


def test_update_trainable_variables_first_then_freeze_variables():
    model = _ssd()
    # update keeps the box predictor; freeze then drops its biases (re.match: ".*" needed).
    trainable = select_trainable(
        model, freeze_variables=[".*/bias"], update_trainable_variables=["box_predictor/"]
    )
    assert set(trainable) == {
        name for name in variable_names(model)
        if name.startswith("box_predictor/") and name.endswith("/kernel")
    }
    changed = _changed(_fit(model))
    assert changed <= set(trainable)
    assert {name for name in trainable if "ClassPredictor" in name} <= changed


def test_frozen_batch_norms_keep_updating_statistics_unless_freeze_batchnorm():
    """As in the TF OD API, freezing stops gradient updates only; freeze_batchnorm stops the
    moving statistics too."""
    for freeze_batchnorm, statistics_change in ((False, True), (True, False)):
        model = _ssd(TinyBatchNormSSDExtractor(), freeze_batchnorm=freeze_batchnorm)
        select_trainable(model, freeze_variables=["feature_extractor/"])
        changed = _changed(_fit(model, steps=2))
        extractor = {name for name in variable_names(model) if name.startswith("feature_")}
        statistics = {name for name in extractor if "/moving_" in name}
        assert (changed & extractor) == (statistics if statistics_change else set())


def test_lr_sweep_trains_the_same_variables_as_the_model(monkeypatch):
    """`lr_sweep` trains a `from_config` copy, which must keep the selection."""
    sweep = importlib.import_module("kdet.training.lr_sweep")
    record = sweep._LossRecorder.on_train_batch_end
    trained = []

    def recording(self, batch, logs=None):
        trained.append(len(self.model.trainable_variables))
        return record(self, batch, logs)

    monkeypatch.setattr(sweep._LossRecorder, "on_train_batch_end", recording)
    model = _ssd()
    kept = select_trainable(model, freeze_variables=["feature_extractor/"])
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    images, y = kdet.datasets.shapes(2, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=1)
    dataset = tf.data.Dataset.from_tensors((images.astype("float32"), y)).repeat()
    kdet.training.lr_sweep(model, dataset, num_steps=2)
    assert trained == [len(kept), len(kept)] and len(kept) < len(model.weights)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"freeze_variables": ["FeatureExtractor/.*"]},
         r"freeze_variables: regex 'FeatureExtractor/\.\*' matches no trainable variable .*"
         r"re\.match.* feature_extractor/stem/conv2d/kernel, box_predictor/BoxPredictor_0_box_"),
        ({"update_trainable_variables": ["BoxPredictor_0"]},
         r"update_trainable_variables: regex 'BoxPredictor_0' matches no trainable variable"),
        ({"freeze_variables": [".*moving_mean"]}, r"matches no trainable variable"),
        ({"freeze_variables": ["feature_extractor/("]}, r"'feature_extractor/\(' is not a valid"),
        ({"freeze_variables": [""]}, r"an empty regex would match every variable"),
        ({"freeze_variables": ["feature_extractor", "box"]}, r"no variable of SSD is left"),
    ],
)
def test_bad_regexes_are_errors_naming_the_regex(arguments, message):
    model = _ssd(TinyBatchNormSSDExtractor())
    with pytest.raises(VariableSelectionError, match=message):
        select_trainable(model, **arguments)


def test_unbuilt_model_is_an_error():
    with pytest.raises(ValueError, match="no weights yet; build it first"):
        variable_names(kdet.SSD(num_classes=2, feature_extractor=tiny_ssd_extractor.NAME))
