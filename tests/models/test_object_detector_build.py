"""`ObjectDetector.build` creates the weights a forward pass creates without running one.

It traces `call` on a symbolic input (`compute_output_spec`): an eager forward pass at the
resizer's size peaked at 12.8 GB for the zoo's Mask R-CNN IRv2 1024. The weights must be those
of the forward pass that `build` ran before: same paths, shapes, seeded values and outputs.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_two_stage_extractor  # noqa: F401 (registers config_test_tiny_two_stage)

import kdet
from kdet.models.faster_rcnn import MaskHead
from kdet.models.faster_rcnn import MaskRCNN
from kdet.models.faster_rcnn import RoIHeads
from kdet.models.object_detector import ObjectDetector


def _tiny_mask_rcnn():
    return MaskRCNN(
        2,
        "config_test_tiny_two_stage",
        image_resizer=kdet.layers.FixedShapeResizer(64, 64),
        roi_heads=RoIHeads(2, kdet.layers.CropAndResizeRoIPooler(8), batch_size=16),
        mask_head=MaskHead(2, mask_height=8, mask_width=8, conv_depth=8),
        freeze_batchnorm=True,
    )


def _eager_build(self, input_shape):
    """The build of kdet before: an eager forward pass of zeros."""
    self.call(tf.zeros([input_shape[0] or 1, 64, 64, 3]))
    if self.freeze_batchnorm:
        self._freeze_batch_norms()


def _built(factory, build=None):
    """`factory()` built for `(None, None, None, 3)` images (by `build` if given), seeded."""
    keras.backend.clear_session()  # the same auto-generated layer names for both builds
    keras.utils.set_random_seed(0)
    if build is None:
        model = factory()
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ObjectDetector, "build", build)  # bound when the model is made
            model = factory()
    model.build((None, None, None, 3))
    return model


def test_build_makes_the_weights_of_a_forward_pass_without_running_one():
    calls = []
    call = MaskRCNN.call

    def recording_call(self, *args, **kwargs):
        calls.append(tf.executing_eagerly())
        return call(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MaskRCNN, "call", recording_call)
        built = _built(_tiny_mask_rcnn)
    assert calls == [False]  # one symbolic trace, no eager forward pass
    assert built.built
    reference = _built(_tiny_mask_rcnn, _eager_build)

    assert [w.path for w in built.weights] == [w.path for w in reference.weights]
    assert [w.trainable for w in built.weights] == [w.trainable for w in reference.weights]
    for weight, expected in zip(built.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), expected.numpy(), err_msg=weight.path)
    images = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3)).astype("float32")
    tf.nest.map_structure(np.testing.assert_array_equal, built(images), reference(images))
