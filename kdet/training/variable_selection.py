"""Names for a detector's variables, and the TF OD API's `freeze_variables` /
`update_trainable_variables` regexes over them.

Keras's own variable paths (`variable.path`, e.g. `conv2d_7/kernel`) neither say which part of
a detector a weight belongs to nor stay the same between processes (Keras numbers unnamed
layers per process). `variable_names` names every weight `<component>/<layer path>/<weight>`:

- `<component>`: the detector attribute holding the layer: `feature_extractor`,
  `box_predictor` (SSD); `feature_extractor`, `region_proposal_network` (its `rpn_head`
  below), `roi_heads` (its `box_predictor` below) (Faster R-CNN);
- `<layer path>`: the names of the layers below it, e.g. `MobilenetV2/block_3_expand` or
  `BoxPredictor_0_class_head/BoxPredictor_0_ClassPredictor` (the names kdet and
  `keras.applications` give). A layer that Keras named itself (`conv2d_7`) is named by the
  attribute holding it (`stem`) or, in a list or a `Sequential`, by its class, numbered in
  order within its parent (`conv2d`, `conv2d_1`, …), so names do not depend on the process;
- `<weight>`: the Keras variable name: `kernel`, `bias`, `gamma`, `moving_mean`, ….

`select_trainable` applies the TF OD API's regexes to those names: Python `re.match` (anchored
at the start of the name, not at its end), `update_trainable_variables` first (only matching
variables train), then `freeze_variables` (matching variables do not train).

`fine_tune_prefixes` says which of those names a TF OD API `fine_tune_checkpoint_type`
restores; `copy_matching_weights` and `weights_kept` restore just them.
"""

import contextlib
import re

import keras

# How many names an error message shows.
_EXAMPLES_SHOWN = 6


class VariableSelectionError(ValueError):
    """A `freeze_variables` / `update_trainable_variables` regex kdet cannot apply.

    Attributes:
        argument: `"freeze_variables"` or `"update_trainable_variables"`.
        regex: the regex at fault, or None when the fault is the whole selection.
        problem: what is wrong, without the argument name.
    """

    def __init__(self, argument, regex, problem):
        super().__init__(f"{argument}: {problem}")
        self.argument = argument
        self.regex = regex
        self.problem = problem


def variable_names(model):
    """Every weight of a built model under a stable, readable name (see the module docstring).

    Args:
        model: a built Keras layer or model, e.g. a `kdet.SSD` or `kdet.FasterRCNN`.

    Returns:
        A dict `name -> keras.Variable`, one entry per weight of `model.weights` and in that
        order (trainable and non-trainable: batch-norm moving statistics too).

    Raises:
        ValueError: if `model` has no weights yet (not built).

    Example:
    ```python
    model.build((None, 300, 300, 3))
    for name, variable in kdet.training.variable_names(model).items():
        print(name, variable.shape)
    # feature_extractor/MobilenetV2/Conv1/kernel (3, 3, 3, 32)
    # box_predictor/BoxPredictor_0_box_head/BoxPredictor_0_BoxEncodingPredictor/bias (12,)
    ```
    """
    if not model.weights:
        raise ValueError(
            f"{type(model).__name__} has no weights yet; build it first, e.g. "
            "model.build((None, height, width, 3))"
        )
    names = {}
    seen = set()
    for name, variable in _named_weights(model, "", top=True):
        if id(variable) not in seen:
            seen.add(id(variable))
            names[name] = variable
    return names


def select_trainable(model, freeze_variables=(), update_trainable_variables=()):
    """Chooses which variables training updates, with the TF OD API's regexes.

    Of the model's trainable variables, those whose `variable_names` name matches a regex of
    `update_trainable_variables` (all of them when it is empty) minus those matching a regex of
    `freeze_variables` stay trainable; the others get `trainable = False`, so
    `model.trainable_variables`, the gradients and the optimizer leave them out and `fit` never
    changes them (the TF OD API's `filter_variables`, applied before training). Matching is
    `re.match`: from the start of the name, e.g. `"feature_extractor/"` or `".*kernel"`.

    Only gradient updates stop: batch-norm moving statistics of a frozen layer still follow
    the batches, as in the TF OD API; `freeze_batchnorm` (or `layer.trainable = False`) stops
    them. Setting a layer's `trainable` afterwards overrides the selection for its variables.
    Call it before `compile`; checkpoints hold optimizer state only for the trained variables,
    so resume a run with the same selection.

    Args:
        model: a built Keras model, e.g. a `kdet.SSD` or `kdet.FasterRCNN`.
        freeze_variables: iterable of regexes of variables not to train.
        update_trainable_variables: iterable of regexes of the only variables to train; empty
            means all.

    Returns:
        A dict `name -> keras.Variable` of the variables left trainable.

    Raises:
        VariableSelectionError: for an empty or invalid regex, one that matches no trainable
            variable (showing a few names), or a selection that leaves nothing to train.

    Example:
    ```python
    model.build((None, 300, 300, 3))
    kdet.training.select_trainable(model, freeze_variables=["feature_extractor/"])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    ```
    """
    trainable_ids = {id(variable) for variable in model.trainable_variables}
    candidates = {
        name: variable
        for name, variable in variable_names(model).items()
        if id(variable) in trainable_ids
    }
    kept = candidates
    if update_trainable_variables:
        selected = _matching(candidates, "update_trainable_variables", update_trainable_variables)
        kept = {name: kept[name] for name in kept if name in selected}
    if freeze_variables:
        frozen = _matching(candidates, "freeze_variables", freeze_variables)
        kept = {name: kept[name] for name in kept if name not in frozen}
    if not kept:
        argument = "freeze_variables" if freeze_variables else "update_trainable_variables"
        raise VariableSelectionError(
            argument, None, f"no variable of {type(model).__name__} is left to train"
        )
    for name, variable in candidates.items():
        if name not in kept:
            variable.trainable = False
    return kept


def copy_matching_weights(source, target, prefixes=("",), require_all=False):
    """Copies the weights of `source` into the weights of `target` with the same name and shape.

    Weights pair up by their `variable_names` name, so the two models may differ in anything
    but the names of the parts they share: another `num_classes` (the class heads then differ
    in shape and keep their initial values, as a TF OD API `"detection"` restore does), input
    size or post-processing.

    Args:
        source: a built Keras model, e.g. a zoo model from `kdet.zoo.load`.
        target: a built Keras model, e.g. the model of a pipeline config.
        prefixes: iterable of str; only `target` weights whose name starts with one of them
            are copied, e.g. `("feature_extractor/",)` for a TF OD API `"detection"` restore
            (see `fine_tune_prefixes`). Defaults to every weight.
        require_all: bool. Every `target` weight under `prefixes` must have a `source` weight
            of its name and shape (the TF OD API `"full"` restore); else nothing is copied
            and a `ValueError` names them. Defaults to `False`.

    Returns:
        A dict of lists of `target` weight names: `"restored"`, `"shape_differs"` (left as
        they were: the source weight of that name has another shape) and `"missing"` (left
        as they were: the source has no weight of that name, or the name is outside
        `prefixes`).

    Raises:
        ValueError: with `require_all`, when a weight under `prefixes` has no match.

    Example:
    ```python
    from kdet.training.variable_selection import copy_matching_weights

    model.build((None, 300, 300, 3))
    result = copy_matching_weights(kdet.zoo.load("ssd_mobilenet_v2_coco"), model)
    len(result["restored"]), result["shape_differs"]  # the class head differs with num_classes
    ```
    """
    prefixes = tuple(prefixes)
    pretrained = variable_names(source)
    result = {"restored": [], "shape_differs": [], "missing": []}
    pairs = []
    for name, weight in variable_names(target).items():
        other = pretrained.get(name) if name.startswith(prefixes) else None
        if other is None:
            result["missing"].append(name)
        elif tuple(other.shape) != tuple(weight.shape):
            result["shape_differs"].append(name)
        else:
            pairs.append((weight, other))
            result["restored"].append(name)
    if require_all:
        unmatched = [
            name for name in result["missing"] + result["shape_differs"]
            if name.startswith(prefixes)
        ]
        if unmatched:
            raise ValueError(
                f"{len(unmatched)} weights of {type(target).__name__} have no weight of the "
                f"same name and shape in {type(source).__name__}: "
                f"{', '.join(_examples(unmatched))}"
            )
    for weight, other in pairs:
        weight.assign(keras.ops.cast(other, weight.dtype))
    return result


# The TF OD API `train_config.fine_tune_checkpoint_type` values kdet reads, and what each
# restores (its meta-architectures' `restore_from_objects`, TF2; `restore_map`, TF1).
FINE_TUNE_CHECKPOINT_TYPES = ("classification", "detection", "fine_tune", "full")
# Every component's weights live under these `variable_names` prefixes.
_FEATURE_EXTRACTOR = "feature_extractor/"


def fine_tune_prefixes(checkpoint_type, load_all_detection_checkpoint_vars=False):
    """The `variable_names` prefixes a TF OD API `fine_tune_checkpoint_type` restores.

    As the TF OD API meta-architectures' `restore_from_objects` (TF2) define the types, on
    kdet's component names:

    - `"classification"`: the feature extractor's classification body (kdet restores it by
      layer name, see `restore_from_classification_checkpoint`; as a weight prefix,
      `feature_extractor/`);
    - `"detection"`: the whole feature extractor of a detection model: for SSD the body and
      its extra layers or FPN, for Faster R-CNN both the proposal features and the box
      classifier features (`feature_extractor/`); the box predictor, RPN head and box
      classifier head keep their initial values. With `load_all_detection_checkpoint_vars`
      (TF1 configs: the TF OD API's TF1 `restore_map`) every weight instead;
    - `"fine_tune"`: the feature extractor of a checkpoint of a whole detection model (the TF
      OD API's CenterNet type; the same weights as `"detection"`);
    - `"full"`: every weight of the model.

    Args:
        checkpoint_type: one of `FINE_TUNE_CHECKPOINT_TYPES`.
        load_all_detection_checkpoint_vars: bool. TF OD API TF1 flag: a `"detection"`
            restore takes every weight. Defaults to `False`.

    Returns:
        A tuple of str prefixes for `copy_matching_weights(prefixes=…)`; `("",)` is every
        weight.

    Raises:
        ValueError: for another `checkpoint_type`.

    Example:
    ```python
    from kdet.training.variable_selection import copy_matching_weights, fine_tune_prefixes

    copy_matching_weights(kdet.zoo.load("ssd_mobilenet_v2_coco"), model,
                          prefixes=fine_tune_prefixes("detection"))  # the extractor only
    ```
    """
    if checkpoint_type not in FINE_TUNE_CHECKPOINT_TYPES:
        raise ValueError(
            f"fine_tune_checkpoint_type {checkpoint_type!r} is not one of "
            f"{', '.join(map(repr, FINE_TUNE_CHECKPOINT_TYPES))}"
        )
    if checkpoint_type == "full" or (
        checkpoint_type == "detection" and load_all_detection_checkpoint_vars
    ):
        return ("",)
    return (_FEATURE_EXTRACTOR,)


@contextlib.contextmanager
def weights_kept(model, prefixes):
    """Puts back, on exit, the weights of `model` outside `prefixes`.

    Restores a scope out of a whole-model checkpoint file: load it all inside the block
    (`model.load_weights(path, skip_mismatch=True)`) and the weights outside the scope return
    to the values they had before it.

    Args:
        model: a built Keras model.
        prefixes: iterable of `variable_names` prefixes whose weights the block may change,
            e.g. `fine_tune_prefixes("detection")`.

    Yields:
        A list of the names of the weights put back on exit (those outside `prefixes`).

    Example:
    ```python
    with weights_kept(model, fine_tune_prefixes("detection")):
        model.load_weights("runs/coco/ckpt-5000.weights.h5", skip_mismatch=True)
    ```
    """
    prefixes = tuple(prefixes)
    kept = {
        name: (weight, keras.ops.convert_to_numpy(weight))
        for name, weight in variable_names(model).items()
        if not name.startswith(prefixes)
    }
    try:
        yield list(kept)
    finally:
        for weight, value in kept.values():
            weight.assign(value)


def _named_weights(layer, path, top):
    """Yields `(name, variable)` for `layer`'s own weights, then its sublayers', depth first.

    The order of `layer.weights` (own weights first), repeats of shared weights included.
    """
    children = list(layer._flatten_layers(include_self=False, recursive=False))
    in_children = {id(weight) for child in children for weight in child.weights}
    own = [weight for weight in layer.weights if id(weight) not in in_children]
    for name, weight in zip(_unique([weight.name for weight in own]), own):
        yield _join(path, name), weight
    attributes = _attribute_names(layer)
    child_names = _unique(
        [_layer_name(child, attributes.get(id(child)), top) for child in children]
    )
    for name, child in zip(child_names, children):
        yield from _named_weights(child, _join(path, name), top=False)


def _attribute_names(layer):
    """`{id(sublayer): attribute}` for sublayers `layer` holds in an attribute (not a list),
    the first attribute for each, leading underscores dropped (`_rpn_head` → `rpn_head`)."""
    names = {}
    for attribute, value in vars(layer).items():
        if isinstance(value, keras.layers.Layer) and id(value) not in names:
            names[id(value)] = attribute.lstrip("_")
    return names


def _layer_name(layer, attribute, top):
    """A sublayer's name segment: for a component (`top`), its attribute; below, its own
    name unless Keras chose it, then its attribute or its class's snake-case name."""
    if attribute is not None and (top or _is_automatic_name(layer)):
        return attribute
    if _is_automatic_name(layer):
        return re.sub(r"_\d+$", "", layer.name)
    return layer.name


def _is_automatic_name(layer):
    """Whether `layer.name` is one Keras made up: the snake-case class name, maybe `_<n>`.

    Keras names an unnamed layer `to_snake_case(class name)` with a per-process counter
    suffix (`conv2d`, `conv2d_1`, …); underscores are ignored when comparing.
    """
    letters = re.sub(r"_\d+$", "", layer.name).replace("_", "")
    return letters == re.sub(r"\W|_", "", type(layer).__name__).lower()


def _unique(names):
    """`names` with repeats numbered in order: `a, a, b` → `a, a_1, b` (never a given name)."""
    given = set(names)
    used = set()
    unique = []
    for name in names:
        candidate, number = name, 0
        while candidate in used or (number and candidate in given):
            number += 1
            candidate = f"{name}_{number}"
        used.add(candidate)
        unique.append(candidate)
    return unique


def _join(path, name):
    return f"{path}/{name}" if path else name


def _matching(names, argument, regexes):
    """Names of `names` that some regex of `regexes` matches (`re.match`), each regex checked."""
    matched = set()
    for regex in regexes:
        if not regex:
            raise VariableSelectionError(
                argument, regex,
                "an empty regex would match every variable (the TF OD API skips it): remove it",
            )
        try:
            pattern = re.compile(regex)
        except re.error as error:
            raise VariableSelectionError(
                argument, regex, f"{regex!r} is not a valid regex: {error}"
            ) from None
        hits = {name for name in names if pattern.match(name)}
        if not hits:
            raise VariableSelectionError(
                argument, regex,
                f"regex {regex!r} matches no trainable variable (regexes match from the start "
                f"of the name, as re.match); the names of the {len(names)} trainable ones look "
                f"like {', '.join(_examples(names))} (kdet.training.variable_names(model) lists "
                "every weight)",
            )
        matched |= hits
    return matched


def _examples(names):
    """A few names, the first of each component first, so that every component shows."""
    firsts = {}
    for name in names:
        firsts.setdefault(name.split("/", 1)[0], name)
    return list(dict.fromkeys([*firsts.values(), *names]))[:_EXAMPLES_SHOWN]
