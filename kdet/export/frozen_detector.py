"""A detector's inference as one constant graph with batch norms folded: kdet's "frozen graph"."""

import tensorflow as tf

from kdet.export.frozen_graph import FrozenGraph
from kdet.export.saved_model import check_serves_images_alone
from kdet.utils.progress import stage_log


class FrozenDetector:
    """`model.detect` with every weight a constant and batch norms folded into convolutions.

    The TF OD API exported its models as frozen graphs; this is kdet's equivalent, for serving
    and for latency. On CPU, TensorFlow's oneDNN kernels keep pre-arranged copies of constant
    convolution filters, where variables are re-read every call, and folding removes the batch
    norms: `benchmarks/ssd_speed.py` measured kdet's SSD MobileNetV2 this way at 0.91–0.96× the
    TF OD API frozen graph's time per image, against 1.04–1.34× for `tf.function(model.detect)`
    (`benchmarks/README.md`). The detector is a snapshot: later changes to the model's weights
    do not reach it.

    Call it like `model.predict_on_batch`: `frozen(images)` with `images` `[B, H, W, 3]` (any
    size, cast to the dtype it was frozen for) returns the predictions dict as numpy arrays:
    `{"boxes" [B, K, 4], "labels" [B, K], "confidences" [B, K], "num_detections" [B]}`, and
    for a CenterNet with keypoint tasks `"keypoints"` `[B, K, num_keypoints, 2]` and
    `"keypoint_scores"`; for a `kdet.MaskRCNN` `"masks"` `[B, K, H, W]` (pasted in the pixels
    of `images`) and `"box_masks"` `[B, K, mask_height, mask_width]`: as `model.predict` gives
    them.

    Args:
        model: a built `kdet.models.ObjectDetector` (`kdet.SSD`, `kdet.FasterRCNN`,
            `kdet.MaskRCNN`, `kdet.CenterNet`).
        dtype: the image dtype the graph takes. Defaults to `"uint8"` (photos).
        progress: bool. Report the stages of the build (seconds for a detector: tracing,
            weights to constants, folding batch norms) on stderr. Defaults to `True`.

    Example:
    ```python
    frozen = kdet.export.FrozenDetector(kdet.zoo.load("ssd_mobilenet_v2_coco"))
    detections = frozen(images)  # images: uint8 [B, H, W, 3]
    ```
    """

    def __init__(self, model, dtype="uint8", progress=True):
        check_serves_images_alone(model)
        self.dtype = tf.dtypes.as_dtype(dtype)
        log = stage_log(progress, "Freezing the detector")
        frozen = FrozenGraph(
            model.detect,
            [tf.TensorSpec([None, None, None, 3], self.dtype, name="images")],
            progress=log,
        )
        self.graph_def = frozen.graph_def
        self._output_structure = frozen.output_structure
        log("loading the frozen graph")
        self._function = frozen.as_function()
        log.done()

    def __call__(self, images):
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"FrozenDetector expects images of shape [batch, height, width, 3]; got "
                f"shape {images.shape.as_list()}."
            )
        outputs = self._function(tf.cast(images, self.dtype))
        return {
            key: value.numpy()
            for key, value in tf.nest.pack_sequence_as(self._output_structure, outputs).items()
        }

