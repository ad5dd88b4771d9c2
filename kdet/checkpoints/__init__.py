"""TF OD API checkpoints (TF2 object-based, as `model_lib_v2` and the TF2 zoo write them)
into kdet models.

```python
model, restore = kdet.checkpoints.load_tfod_model("pipeline.config", "checkpoint/")
```
"""

from kdet.checkpoints import mappings  # noqa: F401  (registers kdet's mappings)
from kdet.checkpoints.restore import TFODRestore
from kdet.checkpoints.restore import load_tfod_model
from kdet.checkpoints.restore import restore_tfod_checkpoint
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_checkpoint import TFODCheckpoint
from kdet.checkpoints.tfod_mapping import register_tf2_mapping

__all__ = [
    "CheckpointError",
    "TFODCheckpoint",
    "TFODRestore",
    "load_tfod_model",
    "register_tf2_mapping",
    "restore_tfod_checkpoint",
]
