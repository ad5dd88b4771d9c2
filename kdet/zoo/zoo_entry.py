"""`ZooEntry`: one model of the kdet zoo, read from its folder."""

import copy
import importlib
import json
import pathlib

from kdet.data.label_map import read_label_map

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
# Metadata fields the loader reads; the others (metrics, licence, ...) document the model.
REQUIRED_METADATA = ("label_map", "weights")


class ZooEntry:
    """One zoo model: the folder `zoo/<name>/` with its config, metadata and label map.

    The folder holds `config.json`, the model as `keras.saving.serialize_keras_object` writes
    it (registered names `kdet>…`); `metadata.json`, which says what the model is (architecture,
    input size, dataset, metrics and where they come from, licence, `num_params`), names the
    label map file (`label_map`) and says where the weights come from (`weights`, see
    `kdet.zoo.load`); and the label map, a TF OD API `.pbtxt`. The entry builds the
    architecture; `kdet.zoo.load` adds the pretrained weights.

    Args:
        directory: str or path-like. The model's folder; its name is the model's name.

    Example:
    ```python
    entry = kdet.zoo.get_entry("ssd_mobilenet_v2_coco")
    entry.label_map[17]                 # 'cat'
    entry.metadata["metrics"]           # COCO mAP and its source
    model = entry.build(num_classes=3)  # the same architecture, randomly initialized
    ```
    """

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.name = self.directory.name
        self.metadata = _read_json(self.directory / METADATA_FILE)
        missing = [field for field in REQUIRED_METADATA if field not in self.metadata]
        if missing:
            raise ValueError(
                f"{self.directory / METADATA_FILE} lacks the field(s) {missing}; expected "
                f"{list(REQUIRED_METADATA)} at least."
            )
        self.config = _read_json(self.directory / CONFIG_FILE)

    @property
    def num_classes(self):
        """int. Object classes of the pretrained model, background excluded."""
        return self.config["config"]["num_classes"]

    @property
    def label_map(self):
        """dict `{id: name}` of the pretrained model's classes, ids from 1."""
        return read_label_map(self.directory / self.metadata["label_map"])

    @property
    def weights(self):
        """dict. Where the pretrained weights come from (`source` and its fields)."""
        return self.metadata["weights"]

    def build(self, num_classes=None):
        """Builds the model from `config.json`, randomly initialized.

        Args:
            num_classes: optional int. Sets every `num_classes` field of the config (the
                detector's and its heads'); `None` keeps the pretrained model's.

        Returns:
            The built Keras model.
        """
        return build_model(self.config, num_classes)

    def __repr__(self):
        return f"ZooEntry({str(self.directory)!r})"


def build_model(config, num_classes=None):
    """Builds a Keras model from its `keras.saving.serialize_keras_object` config.

    Args:
        config: dict, the serialized model (registered names `kdet>…`).
        num_classes: optional int. Sets every `num_classes` field of the config (the
            detector's and its heads'); `None` keeps the config's.

    Returns:
        The built Keras model, randomly initialized.
    """
    import keras

    if num_classes is not None:
        config = copy.deepcopy(config)
        for nested in nested_dicts(config):
            if "num_classes" in nested:
                nested["num_classes"] = num_classes
    # Keras finds `kdet>…` classes only once their modules have registered them.
    for nested in nested_dicts(config):
        module = nested.get("module")
        if isinstance(module, str) and module.startswith("kdet."):
            importlib.import_module(module)
    model = keras.saving.deserialize_keras_object(config)
    model.build((None, None, None, 3))
    return model


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def nested_dicts(config):
    """Every dict inside a nested JSON-like config, the config itself first."""
    if isinstance(config, dict):
        yield config
        children = config.values()
    elif isinstance(config, list):
        children = config
    else:
        return
    for child in children:
        yield from nested_dicts(child)
