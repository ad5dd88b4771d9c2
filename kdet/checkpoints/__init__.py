"""TF OD API checkpoints into kdet models: TF2 object-based (`ckpt-N`, as `model_lib_v2` and
the TF2 zoo write them) and TF1 name-based (`model.ckpt-N`, slim variable names).

```python
model, restore = kdet.checkpoints.load_tfod_model("pipeline.config", "checkpoint/")
model, restore = kdet.checkpoints.load_tfod_model("ssd_mobilenet_v2_320x320_coco17_tpu-8.tar.gz")
```

A component's mapping onto checkpoint variables is registered with `register_tf2_mapping` /
`register_tf1_mapping`, an extractor's backbone for TF2 classification checkpoints with
`register_tf2_classification_backbone` (kdet's own are the modules of
`kdet.checkpoints.mappings`).
"""

from kdet.checkpoints import mappings  # noqa: F401  (registers kdet's mappings)
from kdet.checkpoints.restore import TFODRestore
from kdet.checkpoints.restore import load_tfod_model
from kdet.checkpoints.restore import restore_tfod_checkpoint
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_checkpoint import TFODCheckpoint
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping

__all__ = [
    "CheckpointError",
    "TFODCheckpoint",
    "TFODRestore",
    "load_tfod_model",
    "register_tf1_mapping",
    "register_tf2_classification_backbone",
    "register_tf2_mapping",
    "restore_tfod_checkpoint",
]
