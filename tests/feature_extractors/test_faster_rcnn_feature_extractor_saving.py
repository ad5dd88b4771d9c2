import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import build_feature_extractor


@keras.saving.register_keras_serializable(package="kdet_tests")
class TwoStages(keras.Model):
    """Both stages of a Faster R-CNN extractor, the crops cut from its finest map."""

    def __init__(self, feature_extractor, **kwargs):
        super().__init__(**kwargs)
        self.feature_extractor = feature_extractor

    def build(self, input_shape):
        self.call(tf.zeros([1, 64, 64, 3]))

    def call(self, images):
        extractor = self.feature_extractor
        maps = keras.tree.flatten(extractor.extract_proposal_features(extractor.preprocess(images)))
        return maps + [extractor.extract_box_classifier_features(maps[0][:, :7, :7])]

    def get_config(self):
        config = super().get_config()
        config["feature_extractor"] = keras.saving.serialize_keras_object(self.feature_extractor)
        return config

    @classmethod
    def from_config(cls, config):
        config["feature_extractor"] = keras.saving.deserialize_keras_object(
            config["feature_extractor"]
        )
        return cls(**config)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("faster_rcnn_mobilenet_v2", {"depth_multiplier": 0.35}),
        ("faster_rcnn_mobilenet_v2_fpn", {"depth_multiplier": 0.35, "additional_layer_depth": 16}),
    ],
)
def test_save_and_load_round_trip(tmp_path, name, kwargs):
    model = TwoStages(build_feature_extractor(name, **kwargs))
    model.build((None, 64, 64, 3))
    # Kernels are random already; move the batch norm statistics off their initial values too.
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if variable.name in ("beta", "moving_mean", "bias"):
            variable.assign(rng.normal(0.0, 0.1, variable.shape).astype("float32"))
    model.save(tmp_path / "extractor.keras")
    loaded = keras.saving.load_model(tmp_path / "extractor.keras")
    assert loaded.feature_extractor.get_config() == model.feature_extractor.get_config()
    images = tf.random.uniform([2, 64, 64, 3], maxval=255.0, seed=1)
    for expected, got in zip(model(images), loaded(images)):
        assert np.std(expected) > 0
        np.testing.assert_array_equal(expected, got)
