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

from kdet.zoo.entry_writer import write_zoo_entry
from kdet.zoo.tf_detection_zoo import TFZooEntry
from kdet.zoo.tf_zoo import TFZooArchive
from kdet.zoo.zoo import get_entry
from kdet.zoo.zoo import list_models as list  # noqa: A004 (the `kdet.zoo.list()` API)
from kdet.zoo.zoo import load
from kdet.zoo.zoo_entry import ZooEntry

# `list` stays out of `__all__`: a star import would shadow the builtin.
__all__ = ["TFZooArchive", "TFZooEntry", "ZooEntry", "get_entry", "load", "write_zoo_entry"]
