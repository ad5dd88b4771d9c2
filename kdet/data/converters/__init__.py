"""Dataset converters: Pascal VOC XML, COCO JSON, CSV, mask folders and Python arrays → TF OD
API TFRecords."""

from kdet.data.converters.coco import convert_coco
from kdet.data.converters.conversion_summary import ConversionSummary
from kdet.data.converters.csv_converter import convert_csv
from kdet.data.converters.custom import create_example_from_arrays
from kdet.data.converters.custom import write_tfrecord
from kdet.data.converters.mask_folders import convert_mask_folders
from kdet.data.converters.voc import convert_voc
