"""`eval_config.use_moving_averages`: the evaluator detects with the optimizer's moving averages
of the weights, then gives the trained weights back."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
import tiny_ssd_extractor
from kdet.evaluation import COCOEvaluator
from kdet.evaluation.evaluator import moving_average_weights

IMAGE_SIZE = 64
LABEL_MAP = {1: "square", 2: "circle"}


def _model(seed):
    keras.utils.set_random_seed(seed)
    model = tiny_ssd_extractor.tiny_ssd(num_classes=2, image_size=IMAGE_SIZE)
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return model


def _dataset():
    images, y = kdet.datasets.shapes(6, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=3)
    return tf.data.Dataset.from_tensor_slices((images.astype("float32"), y)).batch(3)


def test_evaluates_the_moving_averages_and_keeps_the_trained_weights():
    trained, averaged = _model(seed=1), _model(seed=2)
    trained.compile(optimizer=keras.optimizers.SGD(0.01, use_ema=True))
    trained.optimizer.build(trained.trainable_variables)
    # The averages the optimizer holds: another model's weights, so that they differ.
    for average, value in zip(trained.optimizer._model_variables_moving_average,
                              averaged.trainable_variables, strict=True):
        average.assign(value)
    before = [weight.numpy().copy() for weight in trained.weights]

    sets = ("coco_detection_metrics", "pascal_voc_detection_metrics")
    with_averages = COCOEvaluator(_dataset(), label_map=LABEL_MAP, metrics_sets=sets,
                                  use_moving_averages=True).evaluate(trained)
    plain = COCOEvaluator(_dataset(), label_map=LABEL_MAP, metrics_sets=sets)
    assert with_averages == plain.evaluate(averaged)
    assert with_averages != plain.evaluate(trained)
    for weight, value in zip(trained.weights, before, strict=True):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_without_moving_averages_it_is_an_error():
    model = _model(seed=1)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    with pytest.raises(ValueError, match="use_moving_averages needs the moving averages"):
        COCOEvaluator(_dataset(), use_moving_averages=True).evaluate(model)
    with pytest.raises(ValueError, match="use_ema=True"):
        with moving_average_weights(_model(seed=2)):
            pass
