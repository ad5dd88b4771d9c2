"""kdet's TF OD API checkpoint mappings, one module per architecture family.

Importing this package imports every module in it, and each registers its mappings with
`kdet.checkpoints.tfod_mapping.register_tf2_mapping`: a new architecture's mapping is a new
module here, nothing else to edit.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
