"""The `tf.data` pipelines of a pipeline config: `train_dataset` (`train_input_reader`,
`train_config`) and `eval_dataset` (`eval_input_reader`, `eval_config`), resized for the
config's model."""




from kdet.configs.config_paths import check_config_paths
from kdet.data.errors import DataError
from kdet.data.input_pipeline import list_input_files
from kdet.data.input_pipeline import read_tfrecords
from kdet.layers import FixedShapeResizer
from kdet.layers import KeepAspectRatioResizer


def input_size(model):
    """`((height, width), pad)`: the size of `model`'s network input, e.g. to build it.

    A `fixed_shape_resizer`'s size, unpadded; a `keep_aspect_ratio_resizer`'s largest,
    `max_dimension` squares (padded). `train_dataset` / `eval_dataset` resize to a
    `fixed_shape_resizer`'s size; a `keep_aspect_ratio_resizer` resizes each image itself
    (see `resized_input_arguments`).
    """
    resizer = model.image_resizer
    if isinstance(resizer, FixedShapeResizer):
        return (resizer.height, resizer.width), False
    if isinstance(resizer, KeepAspectRatioResizer):
        return (resizer.max_dimension, resizer.max_dimension), True
    raise ValueError(f"no training input size for {type(resizer).__name__}")


def resized_input_arguments(model):
    """The `read_tfrecords` arguments that resize images for `model` as its resizer does.

    A `fixed_shape_resizer`: `image_size` (every image stretched to it; the model's own
    resize of that size changes nothing). A `keep_aspect_ratio_resizer`: `image_resizer`, the
    model's resizer itself, run on each image in `tf.data` (TF OD API `resize_to_range`, the
    scale `predict` and export use), the images going to the model with their
    `true_image_shape` so it does not resize them again and knows where the content lies.
    """
    resizer = model.image_resizer
    if isinstance(resizer, FixedShapeResizer):
        return {"image_size": (resizer.height, resizer.width)}
    return {"image_resizer": resizer}


def _with_keypoint_default(input_reader):
    """`read_tfrecords` arguments of an input reader, reading keypoints only when its
    `num_keypoints` asks for them (the TF OD API's default 0 reads boxes only, even from
    records that hold keypoints)."""
    return {"num_keypoints": 0, **input_reader}


def _with_context_sizes(input_reader, model, reader_name):
    """`input_reader` (the config's `reader_name`) with the model's context feature sizes when
    it loads context features (TF OD API `config_util.get_max_num_context_features` /
    `get_context_feature_length`)."""
    if not input_reader.get("load_context_features"):
        if hasattr(model, "max_num_context_features"):
            raise ValueError(
                f"{reader_name}: the model is a Context R-CNN (it has a context_config), so "
                "its inputs need their context features: set load_context_features: true "
                "(and the records must hold image/context_features)"
            )
        return input_reader
    if not hasattr(model, "max_num_context_features"):
        raise ValueError(
            f"{reader_name}: load_context_features is true, but the model has no "
            "context_config (max_num_context_features, context_feature_length): only a "
            "Context R-CNN (faster_rcnn { context_config { ... } }) reads context features"
        )
    return {
        **input_reader,
        "max_num_context_features": model.max_num_context_features,
        "context_feature_length": model.context_feature_length,
    }


def train_dataset(pipeline, seed=None, data_service=None):
    """The training `tf.data` pipeline of `train_input_reader` and `train_config`.

    Batches of `train_config.batch_size` (the global batch; `fit` splits it across replicas),
    augmented with `data_augmentation_options`, resized for the model (see
    `resized_input_arguments`: a `keep_aspect_ratio_resizer` model gets each image resized by
    its own resizer, as in `predict`, with its `true_image_shape`), and repeated as
    `num_epochs` says (0: forever).

    Args:
        pipeline: a `Pipeline` with `train_config` and `train_input_reader`.
        seed: optional int for a reproducible pipeline.
        data_service: None, or a tf.data service to run the pipeline on: a dispatcher
            address `"grpc://host:port"` or a `kdet.data.service.DataService` (see
            `read_tfrecords`). Reading, decoding, augmentation, resizing and batching run on
            its workers; the config is unchanged (the address is no config field).

    Returns:
        A `tf.data.Dataset` of `(images, {"boxes", "labels"})` (with `"keypoints"` and
        `"keypoint_visibilities"` when the input reader's `num_keypoints` is set); for a
        `keep_aspect_ratio_resizer`, images is `{"resized_images", "true_image_shape"}` (see
        `kdet.data.read_tfrecords`'s `image_resizer`).

    Raises:
        ConfigError: at the config line of an `input_path` that matches no file or whose files
            hold no record, or of a missing `label_map_path` (see `check_config_paths`).
    """
    if pipeline.train is None or pipeline.train_input is None:
        missing = "train_config" if pipeline.train is None else "train_input_reader"
        raise ValueError(f"{pipeline.source}: no {missing}; it is needed to train")
    check_config_paths(pipeline, "train_input_reader")
    return read_tfrecords(
        **_with_context_sizes(_with_keypoint_default(pipeline.train_input), pipeline.model,
                              "train_input_reader"),
        **resized_input_arguments(pipeline.model),
        one_frame_per_sequence=True,  # the TF OD API trains on one random frame a sequence
        batch_size=pipeline.train.batch_size,
        augmentation=pipeline.train.augmentation or None,
        drop_remainder=True,
        seed=seed,
        data_service=data_service,
    )


def check_train_dataset(pipeline, dataset):
    """Raises a `DataError` if a finite training dataset has no batch at all.

    Only a training input with `num_epochs` > 0 can: too few records for one full batch
    (`train_dataset` drops a smaller last batch). Reads the first batch, so it costs what
    starting the training costs anyway; an input that repeats forever is not read.

    Args:
        pipeline: a `Pipeline` with `train_input_reader`.
        dataset: its `train_dataset`.
    """
    if pipeline.train_input["num_epochs"] and next(iter(dataset.take(1)), None) is None:
        raise DataError(
            f"{pipeline.source}: train_input_reader gives no batch: {_train_input_text(pipeline)}"
            "; set num_epochs: 0 to repeat the records (the TF OD API default), or lower "
            "train_config.batch_size"
        )


def train_input_ran_out(pipeline, step, num_steps, checkpoint=None):
    """The `DataError` for a training input that ran out at `step`, before `num_steps`
    (`checkpoint`: where the steps done were saved, if they were)."""
    saved = f" (the model at step {step} is saved: {checkpoint})" if checkpoint else ""
    return DataError(
        f"{pipeline.source}: train_input_reader ran out of data at step {step} of {num_steps}"
        f"{saved}: {_train_input_text(pipeline)}; set num_epochs: 0 to repeat the records (the "
        "TF OD API default), or train fewer steps (--num_train_steps)"
    )


def _train_input_text(pipeline):
    files = list_input_files(pipeline.train_input["input_paths"])
    shown = ", ".join(files[:3]) + (f" … ({len(files)} files)" if len(files) > 3 else "")
    return (
        f"num_epochs: {pipeline.train_input['num_epochs']} over {shown} in batches of "
        f"{pipeline.train.batch_size} (a last, smaller batch is dropped)"
    )


def eval_dataset(pipeline, index=0):
    """The evaluation `tf.data` pipeline of an `eval_input_reader` and `eval_config`.

    One pass over the records in file order (no shuffle, `num_epochs` 1 whatever the reader
    says, as the TF OD API's evaluator forces), without augmentation, resized like
    `train_dataset` (a `keep_aspect_ratio_resizer` model gets each image resized by its own
    resizer, with its `true_image_shape`), in batches of `eval_config.batch_size`, the last
    one possibly smaller.

    Args:
        pipeline: a `Pipeline` with an `eval_input_reader`.
        index: int, which `eval_input_reader` of the config. Defaults to `0`.

    Returns:
        A finite `tf.data.Dataset` of `(images, {"boxes", "labels", "difficult"})`
        (`difficult`: the records' `image/object/difficult` flags, which the Pascal VOC
        metrics ignore; see `read_tfrecords`).

    Raises:
        ValueError: naming the config, when it has no `eval_input_reader` (at `index`).
        ConfigError: at the config line of a path that names nothing, or of records without a
            single example (see `check_config_paths`).
    """
    if index >= len(pipeline.eval_inputs):
        raise ValueError(
            f"{pipeline.source}: no eval_input_reader"
            + (f" number {index + 1}" if pipeline.eval_inputs else "")
            + "; it is needed to evaluate"
        )
    check_config_paths(pipeline, "eval_input_reader", index)
    return read_tfrecords(
        **_with_context_sizes(
            {**_with_keypoint_default(pipeline.eval_inputs[index]), "shuffle": False,
             "num_epochs": 1},
            pipeline.model,
            f"eval_input_reader[{index}]",
        ),
        **resized_input_arguments(pipeline.model),
        batch_size=pipeline.eval_config.batch_size,
        include_difficult=True,
    )
