"""`ObjectDetector`: the Keras `Model` base of kdet's meta-architectures.

It owns the training, evaluation and prediction steps, so that every detector trains with
`model.fit`, reports the same named losses from `fit` and `evaluate` (`val_*` for free), and
predicts the kdet predictions dict. Subclasses implement the TF OD API `DetectionModel`
contract with groundtruth passed explicitly:

- `call(images, training=None)`: raw images → raw head outputs (what export serves);
- `forward_train(images, gt_boxes, gt_labels, training)`: ONE forward pass yielding what the
  losses need (for SSD it is `call`; Faster R-CNN samples RoIs with the groundtruth);
- `compute_losses(outputs, gt_boxes, gt_labels)`: dict of named scalars, each divided by a
  normalizer that is global across replicas (`kdet.models.distribution`);
- both also get, as keyword arguments, the ground truth beyond boxes and labels that the model
  lists in `extra_groundtruth` (CenterNet's keypoints: `gt_keypoints`,
  `gt_keypoint_visibilities`), read by `groundtruth_extras`;
- `postprocess(outputs)`: decode + score conversion + NMS → boxes in `rel_yxyx` of the input
  images, 1-based labels, confidences, num_detections.

Weight regularization losses of the layers (`kernel_regularizer`s) join the total loss and are
reported as `regularization_loss` by models that have any.
"""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import convert_format
from kdet.boxes.box_ops import is_padding
from kdet.layers.fused_batch_normalization import FusedBatchNormalization
from kdet.layers.image_resizer import RESIZED_IMAGES
from kdet.layers.image_resizer import TRUE_IMAGE_SHAPE
from kdet.layers.image_resizer import content_fraction
from kdet.models.distribution import first_local_values
from kdet.models.distribution import is_multi_worker
from kdet.models.distribution import num_replicas
from kdet.models.fast_prediction import PredictionFunctions
from kdet.models.fast_prediction import is_in_memory_batch
from kdet.models.groundtruth_checks import checked_before
from kdet.models.groundtruth_checks import groundtruth_errors_as_value_errors
from kdet.models.groundtruth_checks import with_nonfinite_loss_guard
from kdet.models.results import detect_images
from kdet.models.results import predict_groups
from kdet.models.results import rgb_images
from kdet.models.tiled_prediction import predict_tiled
from kdet.training.quantization import QuantizationAwareTraining
from kdet.utils.components import ComponentsConfig

# Any input size works; this one only creates the weights when a saved model is rebuilt.
_BUILD_IMAGE_SIZE = 64
# `keras.Model.predict`'s batch size when none is given.
_KERAS_PREDICT_BATCH_SIZE = 32
# Name of the sum of the layers' regularization losses among the reported losses.
REGULARIZATION_LOSS = "regularization_loss"


class ObjectDetector(ComponentsConfig, keras.Model):
    """Base class of kdet detectors: owns `train_step`, `test_step` and `predict_step`.

    Args:
        num_classes: int. Number of object classes, background excluded. Label ids are
            1..num_classes (0 is background), as in TF OD API label maps.
        bounding_box_format: str. Keras box format of the groundtruth given to `fit` /
            `evaluate` and of the predicted boxes, in pixels of the given images (or a `rel_`
            format). Defaults to `"yxyx"`.
        freeze_batchnorm: bool. Keep every batch norm in inference mode during training:
            normalize with the moving statistics and never update them, while `gamma` and
            `beta` still train (the TF OD API `freeze_batchnorm`, the usual fix for small
            per-device batches). Applies to `kdet.layers.FusedBatchNormalization` (all of
            kdet's nets); other `keras.layers.BatchNormalization` layers, e.g. of a user's
            extractor, are frozen with `trainable = False`. Defaults to `False`.
        quantization: a `kdet.training.QuantizationAwareTraining` (or it serialized by
            `keras.saving.serialize_keras_object`), or None. The model is made
            quantization-aware with it (its `apply`: fake-quantized kernels and activations,
            for an int8 TFLite export; the TF OD API's `graph_rewriter { quantization { … } }`)
            when it is built. `apply` on a detector
            sets it, and `get_config` keeps it, so a `.keras` file of a quantization-aware
            detector loads quantization-aware, with its learned ranges. Defaults to None.
        **kwargs: passed to `keras.Model`.

    Data contract:
        x: images `[batch, height, width, 3]`, raw pixel values 0..255 (uint8 or float); or
            images already resized by the model's `image_resizer` with their true shapes,
            `{"resized_images", "true_image_shape"}` (see `resize_inputs`; what
            `kdet.configs.train_dataset` gives for a `keep_aspect_ratio_resizer`).
        y: `{"boxes": [batch, num_boxes, 4], "labels": [batch, num_boxes]}` padded with -1
            rows (`"classes"` is accepted for `"labels"`); for a model with keypoints also
            `"keypoints"` `[batch, num_boxes, num_keypoints, 2]` `(y, x)` in the unit of the
            boxes and `"keypoint_visibilities"` `[batch, num_boxes, num_keypoints]`.
        predictions: `{"boxes": [batch, max_detections, 4], "labels", "confidences",
            "num_detections"}`, padded past `num_detections` (boxes and labels -1, confidence 0);
            for a model with keypoints also `"keypoints"` (the unit of the boxes) and
            `"keypoint_scores"`.
    """

    #: Names of the losses `compute_losses` returns, in order (subclasses set it).
    loss_names = ()
    #: Ground-truth fields of `y` beyond boxes and labels that the model trains on, e.g.
    #: `("keypoints",)`: `groundtruth_extras` reads them and `forward_train` and
    #: `compute_losses` get them as keyword arguments (subclasses that need them set it).
    extra_groundtruth = ()

    def __init__(self, num_classes, bounding_box_format="yxyx", freeze_batchnorm=False,
                 quantization=None, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.bounding_box_format = bounding_box_format
        self.freeze_batchnorm = freeze_batchnorm
        self.quantization = _quantization(quantization)
        self._total_loss_tracker = keras.metrics.Mean(name="loss")
        self._loss_trackers = [keras.metrics.Mean(name=name) for name in self.loss_names]
        self._regularization_loss_tracker = keras.metrics.Mean(name=REGULARIZATION_LOSS)

    # -- what subclasses implement ---------------------------------------------------------

    def forward_train(self, images, gt_boxes, gt_labels, training):
        """One forward pass that yields everything `compute_losses` reads.

        Args:
            images: `[batch, height, width, 3]`, raw pixel values 0..255.
            gt_boxes: float32 `[batch, num_boxes, 4]` `rel_yxyx`, padding rows -1.
            gt_labels: int32 `[batch, num_boxes]` label-map ids, -1 on padding rows.
            training: bool, passed to the layers.

        Returns:
            A dict of tensors: the head outputs and whatever else the losses need.
        """
        raise NotImplementedError

    def compute_losses(self, outputs, gt_boxes, gt_labels):
        """The losses of a batch as `{name: scalar}`, one per name of `loss_names`.

        Each loss is divided by a normalizer summed over replicas (`kdet.models.distribution`),
        so that the gradients Keras sums over replicas match one device's.

        Args:
            outputs: the dict `forward_train` returned.
            gt_boxes: float32 `[batch, num_boxes, 4]` `rel_yxyx`, padding rows -1.
            gt_labels: int32 `[batch, num_boxes]` label-map ids, -1 on padding rows.
        """
        raise NotImplementedError

    def postprocess(self, outputs):
        """Raw outputs of `call` → the predictions dict, boxes `rel_yxyx` of the input images.

        Returns:
            `{"boxes": float32 [batch, max_detections, 4], "labels": int32 [batch,
            max_detections] label-map ids, "confidences": float32 [batch, max_detections],
            "num_detections": int32 [batch]}`; rows past `num_detections` have boxes and labels
            -1 and confidence 0.
        """
        raise NotImplementedError

    # -- inputs -----------------------------------------------------------------------------

    def resize_inputs(self, inputs):
        """The network's input: the images resized by `image_resizer`, and where they lie.

        The one place the network's input is made (TF OD API `preprocess`), for every path:
        `call`, `fit`, `evaluate`, `predict` and export.

        Args:
            inputs: raw images `[batch, height, width, 3]` (0..255; all the same size), resized
                here with `image_resizer.resize`; or a dict of `"resized_images"` `[batch,
                padded_h, padded_w, 3]`, images already resized by this model's
                `image_resizer` and padded bottom/right to one size, and `"true_image_shape"`
                int32 `[batch, 2]`, each image's content size (what `kdet.data.read_tfrecords(
                image_resizer=model.image_resizer)` and `kdet.configs.train_dataset` /
                `eval_dataset` give for a `KeepAspectRatioResizer`; the TF OD API's
                `true_image_shape`).

        Returns:
            `(resized, scale)`: float32 `[batch, padded_h, padded_w, 3]` and float32 `[batch,
            2]`, the `(height, width)` fraction of the padded frame each image's content fills.
        """
        if isinstance(inputs, dict):
            resized = tf.cast(inputs[RESIZED_IMAGES], tf.float32)
            true_image_shape = inputs[TRUE_IMAGE_SHAPE]
        else:
            resized, true_image_shape = self.image_resizer.resize(inputs)
        return resized, content_fraction(true_image_shape, resized)

    # -- Keras plumbing ---------------------------------------------------------------------

    def build(self, input_shape):
        """Creates every sublayer's weights, e.g. before loading a saved model or checkpoint.

        `call` is traced once on a symbolic `[batch, height, width, 3]` input (Keras'
        `compute_output_spec`: a scratch graph, no tensor computed), so the weights are those a
        forward pass would create, without the memory and time of one: an eager forward pass
        at the resizer's size peaked at 12.8 GB for the zoo's Mask R-CNN IRv2 1024. A model
        whose code needs values (numpy on its tensors) is built by a forward pass instead.

        Args:
            input_shape: `(batch, height, width, 3)` of the raw images, or a dict whose
                `"resized_images"` is that of resized ones; `None` sizes build for
                `_BUILD_IMAGE_SIZE` images (any size works).
        """
        if isinstance(input_shape, dict):
            input_shape = input_shape[RESIZED_IMAGES]
        batch = input_shape[0] or 1
        height = input_shape[1] or _BUILD_IMAGE_SIZE
        width = input_shape[2] or _BUILD_IMAGE_SIZE
        try:
            self.compute_output_spec(keras.KerasTensor((batch, height, width, 3), "float32"))
        except (NotImplementedError, TypeError):
            # Code that needs values cannot be traced symbolically (e.g. a user's extractor
            # calling numpy on its inputs): a forward pass builds what is left.
            self.call(tf.zeros([batch, height, width, 3]))
        if self.freeze_batchnorm:
            self._freeze_batch_norms()
        self.built = True
        if self.quantization is not None and self.quantization.of(self) is None:
            self.quantization.apply(self, input_shape=(batch, height, width, 3))

    def _freeze_batch_norms(self):
        """Puts every batch norm in inference mode for good (see `freeze_batchnorm`)."""
        for layer in self._flatten_layers(include_self=False):
            if isinstance(layer, FusedBatchNormalization):
                layer.frozen = True
            elif isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False

    def compile(self, optimizer=None, jit_compile=False, **kwargs):
        """Configures training; `optimizer=None` means `default_optimizer()`.

        XLA is off by default: on CPU it made a MobileNetV2 training step 7.7× slower here, and
        batched NMS does not compile with it. Losses come from the model, so `loss` and
        `metrics` are rejected.
        """
        for argument in ("loss", "metrics"):
            if kwargs.get(argument) is not None:
                raise ValueError(
                    f"{type(self).__name__}.compile() got {argument}=...; detectors compute "
                    f"their own named losses ({', '.join(self.loss_names)}). Evaluate with "
                    "kdet.evaluation instead of Keras metrics."
                )
        optimizer = self.default_optimizer() if optimizer is None else optimizer
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """Compiles a loaded `.keras` model as it was saved, optimizer state included.

        Keras calls this from `keras.saving.load_model`; its own version only warns for a model
        that overrides `compile`, so a loaded detector would come back uncompiled.

        Args:
            config: the dict `get_compile_config()` saved.
        """
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def default_optimizer(self):
        """SGD with momentum 0.9, learning rate 0.01 and gradient norm clipping at 10."""
        return keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, global_clipnorm=10.0)

    @property
    def metrics(self):
        trackers = [self._total_loss_tracker, *self._loss_trackers]
        if self._has_weight_regularizers():
            trackers.append(self._regularization_loss_tracker)
        return trackers

    def _has_weight_regularizers(self):
        """Whether a trainable weight has a regularizer, i.e. `self.losses` has its loss."""
        return any(weight.regularizer is not None for weight in self.trainable_weights)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, stopping with a clear error on bad ground truth or a NaN loss.

        The ground truth of the first steps is checked (`kdet.models.groundtruth_checks`): a
        bad batch raises `GroundtruthError` (a `ValueError`) saying what is wrong and what was
        expected. A NaN or infinite loss raises `kdet.training.NonFiniteLossError` naming the
        step and the losses, as in `kdet train`, unless `callbacks` has its own NaN callback
        (e.g. `keras.callbacks.TerminateOnNaN()` to stop quietly).
        """
        if len(args) > 5:  # callbacks given by position
            args = (*args[:5], with_nonfinite_loss_guard(args[5]), *args[6:])
        else:
            kwargs["callbacks"] = with_nonfinite_loss_guard(kwargs.get("callbacks"))
        x = args[0] if args else kwargs.get("x")
        if isinstance(x, tf.data.Dataset) and len(args) <= 8:
            # A dataset shuffles itself; Keras would only warn that `shuffle=True` is ignored.
            kwargs.setdefault("shuffle", False)
        with groundtruth_errors_as_value_errors():
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`; bad ground truth raises `GroundtruthError` (see `fit`)."""
        with groundtruth_errors_as_value_errors():
            return super().evaluate(*args, **kwargs)

    def train_step(self, data):
        """One optimizer step on `(images, y)`; returns the running mean of every loss."""
        images, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        images = self._groundtruth_checked(images, y, step=self.optimizer.iterations)
        with tf.GradientTape() as tape:
            losses, total = self._losses_and_total(images, y, training=True)
            scaled_total = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled_total, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._update_trackers(losses, total)

    def test_step(self, data):
        """The same named losses as `train_step` on `(images, y)`, without training."""
        images, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        images = self._groundtruth_checked(images, y)
        losses, total = self._losses_and_total(images, y, training=False)
        return self._update_trackers(losses, total)

    def _groundtruth_checked(self, images, y, step=None):
        """`images` after the checks of `y` (`groundtruth_checks.checked_before`).

        Training checks its first steps (`step`: the optimizer's iterations), evaluation every
        batch. Not under XLA (`jit_compile`), which has no string ops for the message.
        """
        if getattr(self, "jit_compile", False):
            return images
        if isinstance(images, dict):
            # Pixel boxes lie in the content, inside the padded frame the check bounds them by.
            checked = checked_before(
                images[RESIZED_IMAGES], y, self.num_classes, self.bounding_box_format, step
            )
            return {**images, RESIZED_IMAGES: checked}
        return checked_before(images, y, self.num_classes, self.bounding_box_format, step)

    def predict_step(self, data):
        """`detect` on the images of a batch (grayscale and RGBA made RGB): the predictions dict."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(images, dict):
            return self.detect(images)
        return self.detect(rgb_images(images, f"{type(self).__name__}.predict"))

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`keras.Model.predict` that also takes single images, lists and grayscale / RGBA.

        Args:
            x: images `[batch, height, width, 3]` (raw pixel values 0..255), a dataset of them,
                or: one image `[height, width, 3]` (a batch axis is added: the result has
                batch 1); a list of images of any sizes (each size is predicted as its own
                batch; rows come back in the order given, boxes in pixels of their own image);
                grayscale `[height, width]`, `[..., 1]` and RGBA `[..., 4]` images (made RGB,
                alpha dropped, as `kdet predict` does). Other shapes raise a `ValueError`
                naming `[batch, height, width, 3]`.
            batch_size, verbose, steps, callbacks: as in `keras.Model.predict`.

        Returns:
            The predictions dict: `{"boxes": [N, max_detections, 4] in bounding_box_format,
            "labels", "confidences", "num_detections"}`, padded past `num_detections`. For
            one `Results` per image without padding, with names, `draw()` and `save()`, use
            `detect_images`.
        """
        keras_predict = super().predict

        def run(batch, **kwargs):
            # Up to one batch of in-memory images: no dataset, iterator or progress bar.
            if (
                callbacks is None
                and steps is None
                and is_in_memory_batch(batch)
                and len(batch) <= (batch_size or _KERAS_PREDICT_BATCH_SIZE)
                and self._prediction_functions.usable()
            ):
                return self._prediction_functions(batch)
            return keras_predict(batch, **kwargs)

        return predict_groups(
            run,
            x,
            f"{type(self).__name__}.predict",
            batch_size=batch_size,
            verbose=verbose,
            steps=steps,
            callbacks=callbacks,
        )

    def predict_on_batch(self, x):
        """`keras.Model.predict_on_batch`, taking the images `predict` takes (see there)."""
        keras_predict_on_batch = super().predict_on_batch

        def run(batch):
            if is_in_memory_batch(batch) and self._prediction_functions.usable():
                return self._prediction_functions(batch)
            return keras_predict_on_batch(batch)

        return predict_groups(run, x, f"{type(self).__name__}.predict")

    @property
    def _prediction_functions(self):
        """`predict`'s fast path (`kdet.models.fast_prediction`), made on first use and kept
        out of Keras's and SavedModel's tracking."""
        functions = self.__dict__.get("_fast_prediction_functions")
        if functions is None:
            functions = PredictionFunctions(self)
            object.__setattr__(self, "_fast_prediction_functions", functions)
        return functions

    def detect_images(self, images, label_map=None, score_threshold=None, batch_size=None):
        """Detects objects in images of any sizes: one `kdet.models.Results` per image.

        Args:
            images: one image `[height, width, 3]`, a batch, or a list of images of any sizes
                (grayscale and RGBA are converted, as in `predict`).
            label_map: optional dict `{id: name}` or `.pbtxt` path, for `Results.names`.
            score_threshold: optional float; detections scoring below it are left out.
            batch_size: optional int, passed to `predict`.

        Returns:
            A list of `Results` in the order given: `.boxes` `[K, 4]` in bounding_box_format
            (pixels of that image), `.labels`, `.names`, `.scores` (no padding), `.draw()`,
            `.save(path)`, `.to_dict()`.

        Example:
        ```python
        results = model.detect_images([photo, other_photo], label_map={1: "cat"})
        print(results[0].names, results[0].scores)
        results[0].save("runs/photo_detections.jpg")
        ```
        """
        return detect_images(self, images, label_map, score_threshold, batch_size)

    def predict_tiled(self, image, tile_size, stride=None, iou_threshold=0.5, batch_size=8):
        """Detects objects in one large image from overlapping tiles, merged by NMS.

        For scenes much larger than the model's input (aerial tiles, say): see
        `kdet.models.tiled_prediction.predict_tiled` for the tiling and the merge.

        Args:
            image: `[height, width, 3]`, raw pixel values 0..255.
            tile_size: int or `(height, width)` in pixels.
            stride: optional int or `(height, width)`. Defaults to half the tile size.
            iou_threshold: float. Per-class NMS threshold of the merge. Defaults to `0.5`.
            batch_size: int. Tiles per `predict` batch. Defaults to `8`.

        Returns:
            The predictions dict for a batch of one image (`[1, K, ...]`, no padding), boxes in
            `bounding_box_format` for `image`.

        Example:
        ```python
        trees = kdet.zoo.load("faster_rcnn_mobilenet_v2_deepforest")
        detections = trees.predict_tiled(scene, tile_size=200, stride=100)
        ```
        """
        return predict_tiled(self, image, tile_size, stride, iou_threshold, batch_size)

    # -- shared steps -------------------------------------------------------------------------

    def detect(self, images):
        """Runs inference and post-processing on a batch of raw images.

        Args:
            images: `[batch, height, width, 3]`, raw pixel values 0..255, or the dict of
                resized images and true shapes `resize_inputs` takes.

        Returns:
            The predictions dict, boxes in `bounding_box_format` in pixels of `images` (of each
            resized image's content, for a dict), labels as 1-based label-map ids.
        """
        if not isinstance(images, dict):
            images = tf.convert_to_tensor(images)
        detections = self.postprocess(self(images, training=False))
        boxes = convert_boxes_of_images(
            detections["boxes"], "rel_yxyx", self.bounding_box_format, images
        )
        if "keypoints" in detections:
            detections["keypoints"] = convert_points_of_images(
                detections["keypoints"], True, self.bounding_box_format, images
            )
        return {**detections, "boxes": boxes}

    def groundtruth_to_relative(self, images, y):
        """Groundtruth of the data contract → `(gt_boxes rel_yxyx [B, N, 4], gt_labels [B, N])`.

        Pixel boxes are in pixels of `images`; for a dict of resized images (see
        `resize_inputs`), of each image's content (`true_image_shape`), and `rel_yxyx` is then
        relative to the content, i.e. to the original photo.

        Padding rows stay -1; labels of padding rows are forced to -1.
        """
        if not isinstance(y, dict) or "boxes" not in y or not ({"labels", "classes"} & set(y)):
            raise ValueError(
                "y must be a dict with 'boxes' [batch, num_boxes, 4] and 'labels' (or "
                f"'classes') [batch, num_boxes]; got {type(y).__name__}"
                + (f" with keys {sorted(y)}" if isinstance(y, dict) else "")
            )
        labels = y["labels"] if "labels" in y else y["classes"]
        boxes = tf.cast(y["boxes"], tf.float32)
        boxes = convert_boxes_of_images(boxes, self.bounding_box_format, "rel_yxyx", images)
        labels = tf.where(is_padding(boxes), -1, tf.cast(labels, tf.int32))
        return boxes, labels

    def groundtruth_extras(self, images, y):
        """The fields of `extra_groundtruth` in `y` → keyword arguments of `forward_train` and
        `compute_losses`, in relative units as `groundtruth_to_relative` gives the boxes.

        `"keypoints"`: `y["keypoints"]` float `[batch, num_boxes, num_keypoints, 2]` `(y, x)` in
        the unit of the boxes and the optional `y["keypoint_visibilities"]` `[batch, num_boxes,
        num_keypoints]` (0: not labelled) → `gt_keypoints` float32 relative `(y, x)` and
        `gt_keypoint_visibilities` bool, False where not labelled or not finite.
        """
        extras = {}
        for field in self.extra_groundtruth:
            if field not in _EXTRA_GROUNDTRUTH_READERS:
                raise ValueError(
                    f"{type(self).__name__}.extra_groundtruth names {field!r}; kdet reads "
                    f"{sorted(_EXTRA_GROUNDTRUTH_READERS)}"
                )
            if not isinstance(y, dict) or field not in y:
                raise ValueError(
                    f"{type(self).__name__} trains on y[{field!r}] as well as boxes and labels; "
                    f"got y with keys {sorted(y) if isinstance(y, dict) else type(y).__name__}"
                )
            extras.update(_EXTRA_GROUNDTRUTH_READERS[field](self, images, y))
        return extras

    def _losses_and_total(self, images, y, training):
        gt_boxes, gt_labels = self.groundtruth_to_relative(images, y)
        extras = self.groundtruth_extras(images, y)
        outputs = self.forward_train(images, gt_boxes, gt_labels, training=training, **extras)
        losses = self.compute_losses(outputs, gt_boxes, gt_labels, **extras)
        if self.losses:
            # Regularization is the same on every replica and Keras sums replica gradients.
            losses[REGULARIZATION_LOSS] = tf.add_n(self.losses) / num_replicas()
        total = tf.add_n(list(losses.values()))
        return losses, total

    def _update_trackers(self, losses, total):
        # Each replica holds its share of a globally normalized loss; the Mean of the shares
        # times the replica count is the global loss, the same as on one device.
        replicas = num_replicas()
        self._total_loss_tracker.update_state(total * replicas)
        for tracker in self.metrics[1:]:
            tracker.update_state(losses[tracker.name] * replicas)
        logs = {metric.name: metric.result() for metric in self.metrics}
        if is_multi_worker(self.distribute_strategy):
            # keras-team/keras#20585: Keras reduces multi-worker logs along axis 0.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def make_train_function(self, force=False):
        """`keras.Model.make_train_function`, with the optimizer built first (see below)."""
        # Keras builds the optimizer inside the first traced step when no distribution
        # strategy is set, which then traces the step a second time: building it before (the
        # model is built by then, see `_maybe_symbolic_build`) halves the first `fit` (e.g.
        # an SSD MobileNetV2 at 128 px, 52 s → 26 s; measured 2026-12-05).
        if self.built and self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force=force)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Builds the whole model from the first batch before the first step. Without a
        # distribution strategy Keras defers building to the tracing of `train_step`, which
        # runs `forward_train`, not `call`: a Faster R-CNN then never becomes `built`, so
        # `save_weights` fails and `.keras` files load without its trained heads.
        if iterator is not None and (
            not self.built or is_multi_worker(self.distribute_strategy)
        ):
            # keras-team/keras#20585: under MultiWorkerMirroredStrategy Keras reduces the first
            # batch across workers to build the model, which the collective strategy cannot
            # do; this worker's own values build it just as well.
            for _, _, batches in iterator:
                data_batch = first_local_values(next(batches), self.distribute_strategy)
                break
            iterator = None
        if data_batch is not None and not self.built:
            images, _, _ = keras.utils.unpack_x_y_sample_weight(data_batch)
            if isinstance(images, dict):
                images = images[RESIZED_IMAGES]
            with self.distribute_strategy.scope():
                self.build(tuple(images.shape))
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def get_config(self):
        config = {
            **super().get_config(),
            "num_classes": self.num_classes,
            "bounding_box_format": self.bounding_box_format,
            "freeze_batchnorm": self.freeze_batchnorm,
        }
        if self.quantization is not None:
            # Only when set: the configs of float models (the zoo's) stay as they were.
            config["quantization"] = keras.saving.serialize_keras_object(self.quantization)
        config.update(self.component_configs())
        return config


def _quantization(value):
    """The `quantization` argument as a `QuantizationAwareTraining` or None."""
    if isinstance(value, dict):
        value = keras.saving.deserialize_keras_object(value)
    if value is None or isinstance(value, QuantizationAwareTraining):
        return value
    raise TypeError(
        "quantization must be a kdet.training.QuantizationAwareTraining, it serialized or "
        f"None; got {type(value).__name__}"
    )


def to_label_ids(detections):
    """NMS output with 0-based class columns → the same dict with 1-based label-map ids.

    Scores given to NMS have the background column removed, so column `k` is label id `k + 1`;
    padding rows (label -1) stay -1.
    """
    labels = detections["labels"]
    return {**detections, "labels": tf.where(labels >= 0, labels + 1, labels)}


def static_or_dynamic_hw(tensor):
    """`(height, width)` of a `[B, H, W, C]` tensor: Python ints when static, else tensors."""
    dynamic = tf.shape(tensor)
    return tuple(
        tensor.shape[axis] if tensor.shape[axis] is not None else dynamic[axis]
        for axis in (1, 2)
    )


def convert_boxes_of_images(boxes, source, target, images):
    """Converts `[batch, N, 4]` boxes between Keras formats, pixels being those of `images`.

    Args:
        boxes: float `[batch, num_boxes, 4]` in `source`, padded with -1 rows.
        source, target: Keras box format names.
        images: `[batch, height, width, 3]`, or a dict with `"resized_images"` and
            `"true_image_shape"` int32 `[batch, 2]`: pixels are then those of each image's
            content (its true shape), relative formats relative to it.

    Returns:
        float32 `[batch, num_boxes, 4]` in `target`; padding rows stay -1.
    """
    if source == target:
        return tf.cast(boxes, tf.float32)
    if not isinstance(images, dict):
        shape = tf.shape(images)
        return convert_format(boxes, source, target, height=shape[1], width=shape[2])
    relative = (source.startswith("rel_"), target.startswith("rel_"))
    if relative[0] == relative[1]:
        return _convert_same_unit(boxes, source, target)
    # One size per image: through yxyx pixels and rel_yxyx, scaled image by image.
    sizes = tf.cast(tf.tile(images[TRUE_IMAGE_SHAPE], [1, 2]), tf.float32)[:, None, :]
    if relative[0]:
        boxes = _convert_same_unit(boxes, source, "rel_yxyx")
        pixels = tf.where(is_padding(boxes)[..., None], boxes, boxes * sizes)
        return _convert_same_unit(pixels, "yxyx", target)
    boxes = _convert_same_unit(boxes, source, "yxyx")
    relative_boxes = tf.where(is_padding(boxes)[..., None], boxes, boxes / sizes)
    return _convert_same_unit(relative_boxes, "rel_yxyx", target)


def convert_points_of_images(points, relative, bounding_box_format, images):
    """Converts `(y, x)` points between relative units and the unit of `bounding_box_format`.

    Args:
        points: float `[batch, ..., 2]` `(y, x)`; points with both coordinates -1 (padding) stay
            -1.
        relative: bool. True: `points` are relative, return them in the unit of
            `bounding_box_format`; False: the other way.
        bounding_box_format: str, a Keras box format: a `rel_` format means relative units,
            any other pixels of `images`.
        images: `[batch, height, width, 3]`, or a dict with `"true_image_shape"` int32
            `[batch, 2]` (pixels are then those of each image's content).

    Returns:
        float32 `[batch, ..., 2]`.
    """
    points = tf.cast(points, tf.float32)
    if bounding_box_format.startswith("rel_"):
        return points
    if isinstance(images, dict):
        size = tf.cast(images[TRUE_IMAGE_SHAPE], tf.float32)
    else:
        size = tf.cast(tf.shape(images)[1:3], tf.float32)[None]
    size = tf.reshape(size, [-1] + [1] * (points.shape.rank - 2) + [2])
    converted = points * size if relative else points / size
    padding = tf.reduce_all(tf.equal(points, -1.0), axis=-1, keepdims=True)
    return tf.where(padding, points, converted)


def _relative_keypoints(model, images, y):
    """The `"keypoints"` reader of `ObjectDetector.groundtruth_extras`."""
    keypoints = tf.cast(y["keypoints"], tf.float32)
    finite = tf.reduce_all(tf.math.is_finite(keypoints), axis=-1)
    visible = finite
    if "keypoint_visibilities" in y:
        visible &= tf.cast(y["keypoint_visibilities"], tf.bool)
    relative = convert_points_of_images(keypoints, False, model.bounding_box_format, images)
    return {"gt_keypoints": relative, "gt_keypoint_visibilities": visible}


def _instance_masks(model, images, y):
    """The `"masks"` reader of `ObjectDetector.groundtruth_extras`: `y["masks"]` `[batch,
    num_boxes, H, W]` 0/1 → `gt_masks` (as given) and `gt_mask_window` float32 `[batch, 2]`,
    the `(height, width)` fraction of the mask arrays each image's content covers (1 for raw
    images; `true_image_shape / (H, W)` for resized ones, whose masks are padded with them)."""
    masks = y["masks"]
    if not isinstance(images, dict):
        return {"gt_masks": masks, "gt_mask_window": tf.ones([tf.shape(masks)[0], 2])}
    mask_size = tf.cast(tf.shape(masks)[2:4], tf.float32)
    window = tf.cast(images[TRUE_IMAGE_SHAPE], tf.float32) / mask_size[None]
    return {"gt_masks": masks, "gt_mask_window": window}


# `extra_groundtruth` field → function(model, images, y) returning keyword arguments.
_EXTRA_GROUNDTRUTH_READERS = {"keypoints": _relative_keypoints, "masks": _instance_masks}


def _convert_same_unit(boxes, source, target):
    """`convert_format` between two pixel or two relative formats (no image size matters;
    Keras asks for one with relative formats all the same)."""
    if source == target:
        return tf.cast(boxes, tf.float32)
    return convert_format(boxes, source, target, height=1, width=1)
