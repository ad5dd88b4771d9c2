"""Pretrained models by name, and the converters that bring in their weights.

- `kdet.zoo.list()`: the names of kdet's zoo models; `kdet.zoo.list("tf1")`,
  `kdet.zoo.list("tf2")`, `kdet.zoo.list("all")`: the TF OD API's TF1 / TF2 detection zoos too.
- `kdet.zoo.load(name, num_classes=None, cache_dir=None, archive=None)`: the model with its
  pretrained weights, converted once and cached (`$KDET_CACHE_DIR`, else `~/.cache/kdet`); a
  TF detection zoo model is downloaded (or taken from `archive`), checked and unpacked first.
- `kdet.zoo.get_entry(name)`: its `ZooEntry` (metadata: metrics, licence, weight source;
  `label_map` `{id: name}`; config), or for a TF detection zoo model its `TFZooEntry` (URL,
  the source's mAP and speed, input size, architecture, `kdet_can_build`).
- `kdet.zoo.TFZooArchive.locate(folder)`: the pipeline.config and checkpoint of an unpacked
  TF OD API zoo archive.
- `kdet.zoo.write_zoo_entry(model, directory, label_map, metadata)`: a trained model as a zoo
  folder with its (float16) weights inside.
- `kdet.zoo.tf_od_api_converter`: TF OD API frozen graph → kdet weights.

Example:
```python
model = kdet.zoo.load("ssd_mobilenet_v2_coco")
label_map = kdet.zoo.get_entry("ssd_mobilenet_v2_coco").label_map
detections = model.predict(images)
names = [label_map[int(i)] for i in detections["labels"][0] if i > 0]
```
"""

import importlib as _importlib

# Public names → (module, name there), imported on first use: `kdet predict` of a cached
# TFLite model looks up its entry and label map without importing TensorFlow or Keras.
_NAMES = {
    "write_zoo_entry": ("kdet.zoo.entry_writer", "write_zoo_entry"),
    "TFZooEntry": ("kdet.zoo.tf_detection_zoo", "TFZooEntry"),
    "TFZooArchive": ("kdet.zoo.tf_zoo", "TFZooArchive"),
    "get_entry": ("kdet.zoo.zoo", "get_entry"),
    "list": ("kdet.zoo.zoo", "list_models"),  # the `kdet.zoo.list()` API
    "load": ("kdet.zoo.zoo", "load"),
    "ZooEntry": ("kdet.zoo.zoo_entry", "ZooEntry"),
}


def __getattr__(name):
    if name in _NAMES:
        module, attribute = _NAMES[name]
        return getattr(_importlib.import_module(module), attribute)
    raise AttributeError(f"module 'kdet.zoo' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_NAMES})


# `list` stays out of `__all__`: a star import would shadow the builtin.
__all__ = ["TFZooArchive", "TFZooEntry", "ZooEntry", "get_entry", "load", "write_zoo_entry"]
