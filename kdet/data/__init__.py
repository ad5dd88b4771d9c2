"""Data layer: TF OD API tf.train.Example codec, label maps, TFRecords, converters, input pipeline.

Everything on disk is what the TF Object Detection API reads and writes: TFRecords of
`tf.train.Example` with its keys (`kdet.data.tf_example`) and `.pbtxt` label maps.
"""

import importlib as _importlib

# Public names → the module defining them, imported on first use (most import TensorFlow;
# `kdet predict` of a cached TFLite model reads a label map and runs without it).
_NAMES = {
    "ConversionSummary": "kdet.data.converters",
    "convert_coco": "kdet.data.converters",
    "convert_csv": "kdet.data.converters",
    "convert_mask_folders": "kdet.data.converters",
    "convert_voc": "kdet.data.converters",
    "create_example_from_arrays": "kdet.data.converters",
    "write_tfrecord": "kdet.data.converters",
    "DataError": "kdet.data.errors",
    "list_input_files": "kdet.data.input_pipeline",
    "pad_context_features": "kdet.data.input_pipeline",
    "pad_groundtruth": "kdet.data.input_pipeline",
    "pad_keypoints": "kdet.data.input_pipeline",
    "pad_masks": "kdet.data.input_pipeline",
    "read_tfrecords": "kdet.data.input_pipeline",
    "resize_image_and_boxes": "kdet.data.input_pipeline",
    "KeypointItem": "kdet.data.label_map",
    "LabelMapItem": "kdet.data.label_map",
    "create_categories": "kdet.data.label_map",
    "label_map_from_names": "kdet.data.label_map",
    "name_to_id": "kdet.data.label_map",
    "read_label_map": "kdet.data.label_map",
    "read_label_map_items": "kdet.data.label_map",
    "read_label_map_keypoints": "kdet.data.label_map",
    "validate_label_map": "kdet.data.label_map",
    "write_label_map": "kdet.data.label_map",
    "ShardedTFRecordWriter": "kdet.data.sharded_tfrecord_writer",
    "create_tf_example": "kdet.data.tf_example",
    "create_tf_sequence_example": "kdet.data.tf_example",
    "decode_tf_example": "kdet.data.tf_example",
    "decode_tf_sequence_example": "kdet.data.tf_example",
    "encode_image": "kdet.data.tf_example",
}


def __getattr__(name):
    if name == "augmentation":
        return _importlib.import_module("kdet.data.augmentation")
    if name in _NAMES:
        return getattr(_importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'kdet.data' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


__all__ = [
    "ConversionSummary",
    "DataError",
    "KeypointItem",
    "LabelMapItem",
    "ShardedTFRecordWriter",
    "augmentation",
    "convert_coco",
    "convert_csv",
    "convert_mask_folders",
    "convert_voc",
    "create_categories",
    "create_example_from_arrays",
    "create_tf_example",
    "create_tf_sequence_example",
    "decode_tf_example",
    "decode_tf_sequence_example",
    "encode_image",
    "label_map_from_names",
    "list_input_files",
    "name_to_id",
    "pad_context_features",
    "pad_groundtruth",
    "pad_keypoints",
    "pad_masks",
    "read_label_map",
    "read_label_map_items",
    "read_label_map_keypoints",
    "read_tfrecords",
    "resize_image_and_boxes",
    "validate_label_map",
    "write_label_map",
    "write_tfrecord",
]
