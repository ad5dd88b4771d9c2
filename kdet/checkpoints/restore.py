"""TF OD API checkpoints into kdet models: `restore_tfod_checkpoint`, `load_tfod_model`."""

import dataclasses
import pathlib
import tempfile

from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_checkpoint import TFODCheckpoint
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import tf1_layer_pairs
from kdet.checkpoints.tfod_mapping import tf2_classification_backbone_pairs
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs

# The parts of the model each `fine_tune_checkpoint_type` restores, as the TF OD API's
# `restore_from_objects` (TF2) and `restore_map` (TF1) do (SSD and Faster R-CNN alike):
# "classification" the classification backbone, "detection" the whole feature extractor
# (backbone, extra layers, FPN) but not the box predictor or heads, "full" everything.
PARTS_OF_TYPE = {
    "classification": {BACKBONE},
    "detection": {BACKBONE, EXTRACTOR},
    "fine_tune": {BACKBONE, EXTRACTOR},
    "full": {BACKBONE, EXTRACTOR, HEADS},
}
# Object path of the detection model in a `model_lib_v2` / TF2 zoo checkpoint.
TF2_MODEL_PREFIX = "model"
# Model class → function(model) → the TF-Slim scopes of variables its TF1 graph builds but
# never computes with (`register_tf1_unread_scopes`).
_TF1_UNREAD_SCOPES = {}


def register_tf1_unread_scopes(cls):
    """Decorator: `function(model)` → list of TF-Slim scopes whose TF1 checkpoint variables
    are built but never read by models of class `cls`, or whose feature extractor is of class
    `cls` (and subclasses without their own), e.g. the stage-1 `block4` slim's `resnet_v1`
    builds under a TF1 Faster R-CNN's `FirstStageFeatureExtractor/`. A TF1 "full" or
    "detection" restore does not require them and reports them in `TFODRestore.unused`."""

    def register(function):
        _TF1_UNREAD_SCOPES[cls] = function
        return function

    return register


def _tf1_unread_keys(model, shapes):
    """The keys of `shapes` under the TF1 scopes registered as unread for `model`'s class and
    for its feature extractor's."""
    scopes = []
    for owner in (model, getattr(model, "feature_extractor", None)):
        registered = [cls for cls in type(owner).__mro__ if cls in _TF1_UNREAD_SCOPES]
        if registered:
            scopes += _TF1_UNREAD_SCOPES[registered[0]](model)
    prefixes = tuple(scope + "/" for scope in scopes)
    return {key for key in shapes if prefixes and key.startswith(prefixes)}


@dataclasses.dataclass
class TFODRestore:
    """What `restore_tfod_checkpoint` did.

    `str()` is one line, e.g. `restored 260 weights of ckpt-0 (TF2, detection); 28 left as
    they were (not restored by a 'detection' checkpoint type)`, or for a TF1 training
    checkpoint `restored 344 weights of model.ckpt-2000 (TF1, full); 649 checkpoint entries
    not read (step, optimizer slots, moving averages)`.

    Attributes:
        checkpoint: the `TFODCheckpoint` read.
        checkpoint_type: the `fine_tune_checkpoint_type` used.
        restored: `[(kdet weight path, checkpoint key)]` of the restored weights (the key of
            the moving average that was read with `use_moving_averages`).
        not_restored: kdet weight paths the checkpoint type leaves as they were.
        unused: checkpoint variables of model weights the checkpoint type does not read
            (the box predictor's in a "detection" restore, a classifier's logits).
        ignored: checkpoint entries that are no model weight, not read: the step, optimizer
            state and slots, moving averages (but those read with `use_moving_averages`).
    """

    checkpoint: TFODCheckpoint
    checkpoint_type: str
    restored: list
    not_restored: list
    unused: list = dataclasses.field(default_factory=list)
    ignored: list = dataclasses.field(default_factory=list)

    def __str__(self):
        text = (
            f"restored {len(self.restored)} weights of {self.checkpoint.prefix.name} "
            f"(TF{self.checkpoint.version[1]}, {self.checkpoint_type})"
        )
        if self.not_restored:
            text += (
                f"; {len(self.not_restored)} left as they were (not restored by a "
                f"{self.checkpoint_type!r} checkpoint type)"
            )
        if self.unused:
            text += (
                f"; {_count(self.unused, 'checkpoint variable')} not read (outside a "
                f"{self.checkpoint_type!r} restore, e.g. {self.unused[0]})"
            )
        if self.ignored:
            text += (
                f"; {_count(self.ignored, 'checkpoint entry', 'checkpoint entries')} not read "
                "(step, optimizer slots, moving averages)"
            )
        return text


def _count(items, singular, plural=None):
    """`"1 checkpoint entry"`, `"3 checkpoint entries"`."""
    return f"{len(items)} {singular if len(items) == 1 else plural or singular + 's'}"


def restore_tfod_checkpoint(
    model, checkpoint, checkpoint_type="full", use_moving_averages=False
):
    """Loads a TF OD API checkpoint into a kdet model built from the same config.

    The model must be the one the checkpoint's `pipeline.config` describes (built with
    `kdet.configs.load_pipeline`); only `num_classes` may differ when the checkpoint type
    leaves the heads out. Weights pair up by structure in TF2 object-based checkpoints
    (`ckpt-N`) and by TF-Slim name in TF1 name-based ones (`model.ckpt-N`, slim
    classification checkpoints), see `kdet.checkpoints.tfod_mapping`; every shape is checked
    and every checkpoint variable of the restored parts must be used before anything is
    assigned, so a failed restore leaves the model as it was. A TF1 `"full"` restore must use
    every model variable of the checkpoint (but those of scopes the TF1 graph builds and never
    reads, `register_tf1_unread_scopes`: reported in `TFODRestore.unused`); a TF1
    `"classification"` restore reads the backbone from a slim classification checkpoint
    (`MobilenetV2/…`, `resnet_v1_50/…`: the detection scopes `FeatureExtractor/`,
    `FirstStageFeatureExtractor/`, … dropped, as the TF OD API's
    `restore_from_classification_checkpoint_fn` does) and leaves its classifier (`…/Logits`)
    unused; a TF2 `"classification"` restore reads the backbone from a
    `tf.train.Checkpoint(feature_extractor=<Keras classification model>)` (what `model_lib_v2`
    restores for that type) and leaves unused what the detector's body does not have (the
    EfficientNet's blocks past EfficientDet's last level, its top convolution and classifier,
    which the TF OD API restores and never computes with). Entries that are no model weight (the
    step, optimizer slots such as `…/Momentum` and `…/RMSProp`, moving averages) are never
    assigned: `TFODRestore.ignored` lists them.

    Args:
        model: a built or unbuilt kdet detector (`kdet.SSD`, ...); built here if needed.
        checkpoint: a path `TFODCheckpoint.open` accepts (a `ckpt-N` or `model.ckpt-N`
            prefix, a folder with a `checkpoint` file, an extracted zoo archive), or a
            `TFODCheckpoint`.
        checkpoint_type: the TF OD API's `fine_tune_checkpoint_type`: `"full"` (every weight),
            `"detection"` / `"fine_tune"` (the feature extractor: backbone and the layers on
            it), `"classification"` (the backbone only). Defaults to `"full"`.
        use_moving_averages: bool. Read each weight's exponential moving average
            (`<name>/ExponentialMovingAverage`) where a TF1 checkpoint has one, as the TF OD
            API's TF1 evaluation and export do with `eval_config.use_moving_averages`
            (variables without an average, such as batch-norm statistics, are read as they
            are). TF1 checkpoints only. Defaults to `False`.

    Returns:
        A `TFODRestore` (print it for a one-line account).

    Raises:
        CheckpointError: the checkpoint cannot be read, its version is one kdet does not map
            into this model, or it does not fit the model; the message lists the weights
            that are missing, mis-shaped or left over.
    """
    if checkpoint_type not in PARTS_OF_TYPE:
        raise ValueError(
            f"checkpoint_type must be one of {sorted(PARTS_OF_TYPE)}; got {checkpoint_type!r}"
        )
    if not isinstance(checkpoint, TFODCheckpoint):
        checkpoint = TFODCheckpoint.open(checkpoint)
    if use_moving_averages and not checkpoint.has_moving_averages:
        raise CheckpointError(
            f"use_moving_averages: the checkpoint {checkpoint.prefix} holds no TF1 "
            "exponential moving averages (<name>/ExponentialMovingAverage)"
        )
    if not model.built:
        model.build((None, None, None, 3))
    chosen, must_use = _chosen_pairs(model, checkpoint, checkpoint_type)
    assignments = [item for pair in chosen for item in pair.assignments()]
    _check(checkpoint, assignments, must_use)
    sources = {
        key: (use_moving_averages and checkpoint.moving_average_key(key)) or key
        for _, key in assignments
    }
    values = checkpoint.read_all(sources.values())
    for variable, key in assignments:
        variable.assign(values[sources[key]].astype(variable.dtype))
    restored_ids = {id(variable) for variable, _ in assignments}
    read = set(sources.values())
    return TFODRestore(
        checkpoint,
        checkpoint_type,
        [(variable.path, sources[key]) for variable, key in assignments],
        [variable.path for variable in model.weights if id(variable) not in restored_ids],
        unused=sorted(set(checkpoint.shapes) - set(sources)),
        ignored=[key for key in checkpoint.ignored if key not in read],
    )


def _chosen_pairs(model, checkpoint, checkpoint_type):
    """`(pairs, must_use)`: the layer pairs `checkpoint_type` restores and the checkpoint keys
    they must use between them (a TF1 "full" restore: every model variable; TF1 "detection":
    every variable under the restored parts' top scopes, such as `FeatureExtractor/`; both
    but those under `register_tf1_unread_scopes` scopes; otherwise every variable under a
    restored layer's path)."""
    parts = PARTS_OF_TYPE[checkpoint_type]
    if checkpoint.version == "V2" and checkpoint_type == "classification" and not any(
        key.startswith(TF2_MODEL_PREFIX + "/") for key in checkpoint.shapes
    ):
        # A classification checkpoint of the backbone alone (see TF2_CLASSIFICATION_PREFIX).
        chosen = tf2_classification_backbone_pairs(model.feature_extractor, checkpoint.shapes)
        return chosen, _under(checkpoint.shapes, chosen)
    if checkpoint.version == "V2":
        pairs = tf2_layer_pairs(model, TF2_MODEL_PREFIX, checkpoint.shapes)
        chosen = [pair for pair in pairs if pair.part in parts]
        return chosen, _under(checkpoint.shapes, chosen)
    chosen = [pair for pair in tf1_layer_pairs(model) if pair.part in parts]
    if checkpoint_type == "classification":
        chosen = [pair.in_classification_checkpoint() for pair in chosen]
        return chosen, _under(checkpoint.shapes, chosen)
    unread = _tf1_unread_keys(model, checkpoint.shapes)
    if checkpoint_type == "full":
        return chosen, set(checkpoint.shapes) - unread
    tops = tuple({pair.path.split("/", 1)[0] + "/" for pair in chosen})
    return chosen, {key for key in checkpoint.shapes if key.startswith(tops)} - unread


def _under(shapes, pairs):
    """The keys of `shapes` under the paths of `pairs`."""
    prefixes = tuple(pair.path + "/" for pair in pairs)
    return {key for key in shapes if key.startswith(prefixes)}


def _check(checkpoint, assignments, must_use):
    """Raises a `CheckpointError` unless every assignment's key exists with the variable's
    shape, no two weights take the same key, and every key of `must_use` is used."""
    problems = []
    taken = {}
    for variable, key in assignments:
        if key in taken:
            problems.append(f"{taken[key]} and {variable.path} both map to {key}")
        taken[key] = variable.path
    for variable, key in assignments:
        shape = checkpoint.shapes.get(key)
        if shape is None:
            problems.append(f"{variable.path}: no {key}")
        elif list(shape) != list(variable.shape):
            problems.append(
                f"{variable.path}: shape {list(variable.shape)}, checkpoint {key} {shape}"
            )
    left_over = sorted(must_use - set(taken))
    problems += [f"checkpoint variable {key} has no kdet weight" for key in left_over]
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(
            f"the checkpoint {checkpoint.prefix} does not fit the model "
            f"({len(problems)} problems):\n  {shown}{more}"
        )


def load_tfod_model(
    pipeline_config, checkpoint=None, checkpoint_type="full", use_moving_averages=False
):
    """A kdet detector from a TF OD API `pipeline.config` and one of its checkpoints, or from
    a TF OD API zoo archive (`.tar.gz`, or unpacked) or model folder holding both.

    The model is built float32 whatever the config's `use_bfloat16` says (a TPU training
    switch; the TF OD API's exporter builds float32).

    Args:
        pipeline_config: path of the `pipeline.config` (text format), as the TF OD API's
            `exporter_main_v2.py --pipeline_config_path` takes it. With no `checkpoint`: a
            zoo archive `.tar.gz` (unpacked safely into a temporary folder, removed after:
            `kdet.zoo.download.extract_tar_gz`), or a folder holding `pipeline.config` and its
            checkpoint (an unpacked archive, a TF OD API model directory:
            `kdet.zoo.TFZooArchive.locate`).
        checkpoint: the checkpoint (`--trained_checkpoint_dir`, TF1's
            `--trained_checkpoint_prefix`): see `restore_tfod_checkpoint`. Defaults to None
            (the one beside `pipeline_config`, see above).
        checkpoint_type: see `restore_tfod_checkpoint`. Defaults to `"full"`.
        use_moving_averages: see `restore_tfod_checkpoint`. Defaults to `False`.

    Returns:
        `(model, restore)`: the detector and its `TFODRestore`.

    Raises:
        CheckpointError: see `restore_tfod_checkpoint`.
        kdet.zoo.download.ArchiveError: an archive or folder without one `pipeline.config`
            and a checkpoint, or an unsafe or damaged archive (named).

    Example:
    ```python
    model, restore = kdet.checkpoints.load_tfod_model(
        "ssd_mobilenet_v2_320x320_coco17_tpu-8/pipeline.config",
        "ssd_mobilenet_v2_320x320_coco17_tpu-8/checkpoint")
    print(restore)  # restored 348 weights of ckpt-0 (TF2, full)
    model, restore = kdet.checkpoints.load_tfod_model(  # a downloaded zoo archive
        "ssd_mobilenet_v2_320x320_coco17_tpu-8.tar.gz")
    model, restore = kdet.checkpoints.load_tfod_model(  # a TF1 training checkpoint
        "train_dir/pipeline.config", "train_dir/model.ckpt-20000", use_moving_averages=True)
    ```
    """
    if checkpoint is None:
        return _load_tfod_folder_or_archive(
            pathlib.Path(pipeline_config), checkpoint_type, use_moving_averages
        )
    from kdet.configs import load_pipeline

    model = load_pipeline(pipeline_config, dtype_policy="float32").model
    return model, restore_tfod_checkpoint(
        model, checkpoint, checkpoint_type, use_moving_averages
    )


def _load_tfod_folder_or_archive(path, checkpoint_type, use_moving_averages):
    """`load_tfod_model` of an archive `.tar.gz` or of a folder holding a config and its
    checkpoint."""
    from kdet.zoo.download import extract_tar_gz
    from kdet.zoo.tf_zoo import TFZooArchive

    if path.is_dir():
        archive = TFZooArchive.locate(path)
        return load_tfod_model(
            archive.pipeline_config, archive.checkpoint_prefix, checkpoint_type,
            use_moving_averages,
        )
    with tempfile.TemporaryDirectory(prefix="kdet-tfod-archive-") as folder:
        unpacked = extract_tar_gz(path, pathlib.Path(folder) / "archive")
        return _load_tfod_folder_or_archive(unpacked, checkpoint_type, use_moving_averages)
