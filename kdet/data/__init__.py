"""Data layer: TF OD API tf.train.Example codec, label maps, TFRecords, converters, input pipeline.

Everything on disk is what the TF Object Detection API reads and writes: TFRecords of
`tf.train.Example` with its keys (`kdet.data.tf_example`) and `.pbtxt` label maps.
"""

from kdet.data import augmentation
from kdet.data.converters import ConversionSummary
from kdet.data.converters import convert_coco
from kdet.data.converters import convert_csv
from kdet.data.converters import convert_mask_folders
from kdet.data.converters import convert_voc
from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord
from kdet.data.errors import DataError
from kdet.data.input_pipeline import list_input_files
from kdet.data.input_pipeline import pad_context_features
from kdet.data.input_pipeline import pad_groundtruth
from kdet.data.input_pipeline import pad_keypoints
from kdet.data.input_pipeline import pad_masks
from kdet.data.input_pipeline import read_tfrecords
from kdet.data.input_pipeline import resize_image_and_boxes
from kdet.data.label_map import KeypointItem
from kdet.data.label_map import LabelMapItem
from kdet.data.label_map import create_categories
from kdet.data.label_map import label_map_from_names
from kdet.data.label_map import name_to_id
from kdet.data.label_map import read_label_map
from kdet.data.label_map import read_label_map_items
from kdet.data.label_map import read_label_map_keypoints
from kdet.data.label_map import validate_label_map
from kdet.data.label_map import write_label_map
from kdet.data.sharded_tfrecord_writer import ShardedTFRecordWriter
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import create_tf_sequence_example
from kdet.data.tf_example import decode_tf_example
from kdet.data.tf_example import decode_tf_sequence_example
from kdet.data.tf_example import encode_image

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
