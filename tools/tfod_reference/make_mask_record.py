"""Makes instance-mask TFRecords with the TF OD API's own COCO tool, and decodes them with its
decoder.

Runs in the TF OD API venv (never in kdet's python):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python tools/tfod_reference/make_mask_record.py

Input, written by this script to `tests/data/coco_masks/`: `instances.json`, a tiny COCO
instances file over three PNG images (`images/a.png` 24x32 with a two-part polygon object and a
crowd object in uncompressed RLE, `b.png` 20x20 with a triangle polygon, `c.png` without
objects) — the two segmentation kinds `create_coco_tf_record.py` reads (polygons for
non-crowd objects, uncompressed RLE for crowd ones). Output, in
`tests/data/tfod_reference/coco_masks/`:
- `png_masks.record`: the three `tf.train.Example`s `_create_tf_record_from_coco_annotations`
  writes with `include_masks=True` (`image/object/mask`: one PNG per object);
- `numerical_masks.record`: the same examples with the masks stored the dense way
  (`image/object/mask` as `num_boxes * height * width` floats 0/1, written with the TF OD API's
  `dataset_util.float_list_feature`);
- `decoded.npz`: what `TfExampleDecoder(load_instance_masks=True, instance_mask_type=...)`
  decodes, per record `i`: `png_masks_i` and `numerical_masks_i` float32 `[N, height, width]`,
  `boxes_i` `[N, 4]`.
kdet's tests decode both records and convert the same JSON and compare
(tests/data/test_masks_records.py).
"""

import json
import pathlib
import shutil
import tempfile

import numpy as np
import PIL.Image
import tensorflow as tf
from object_detection.core import standard_fields as fields
from object_detection.data_decoders import tf_example_decoder
from object_detection.dataset_tools import create_coco_tf_record
from object_detection.protos import input_reader_pb2
from object_detection.utils import dataset_util
from pycocotools import mask as coco_mask
from tensorflow.python.ops import control_flow_ops

# tf_slim's decoder (inside TfExampleDecoder) calls `control_flow_ops.case` and `.cond`, which
# TF 2.21 no longer has there; give it the public ops back (only in this script's process).
control_flow_ops.case = tf.compat.v1.case
control_flow_ops.cond = tf.compat.v1.cond

REPO = pathlib.Path(__file__).resolve().parents[2]
INPUT_DIR = REPO / "tests" / "data" / "coco_masks"
OUTPUT_DIR = REPO / "tests" / "data" / "tfod_reference" / "coco_masks"


def _crowd_rle(height, width):
    """An uncompressed COCO RLE (column-major run lengths) of a blob in the lower right."""
    blob = np.zeros([height, width], np.uint8)
    blob[15:22, 20:30] = 1
    blob[18:24, 26:31] = 1
    flat = blob.ravel(order="F")
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return {"counts": counts, "size": [height, width]}, blob


def write_inputs():
    """The images and `instances.json` (boxes are the segmentations' extents)."""
    images_dir = INPUT_DIR / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(19)
    sizes = {"a.png": (24, 32), "b.png": (20, 20), "c.png": (16, 16)}
    for name, (height, width) in sizes.items():
        pixels = rng.integers(0, 255, [height, width, 3], dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(images_dir / name)
    crowd, crowd_mask = _crowd_rle(24, 32)
    rows, cols = np.nonzero(crowd_mask)
    annotations = [
        {
            "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 95.0,
            "bbox": [2.0, 2.0, 16.0, 8.5],
            "segmentation": [
                [2.0, 2.0, 12.5, 2.0, 12.5, 10.5, 2.0, 10.5],
                [14.0, 3.0, 18.0, 3.0, 16.0, 8.0],
            ],
        },
        {
            "id": 2, "image_id": 1, "category_id": 2, "iscrowd": 1,
            "area": float(crowd_mask.sum()),
            "bbox": [float(cols.min()), float(rows.min()),
                     float(cols.max() + 1 - cols.min()), float(rows.max() + 1 - rows.min())],
            "segmentation": crowd,
        },
        {
            "id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0, "area": 60.0,
            "bbox": [3.2, 4.0, 13.0, 12.7],
            "segmentation": [[3.2, 16.7, 16.2, 16.7, 9.7, 4.0]],
        },
    ]
    data = {
        "images": [
            {"id": index + 1, "file_name": name, "height": height, "width": width}
            for index, (name, (height, width)) in enumerate(sizes.items())
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": annotations,
    }
    (INPUT_DIR / "instances.json").write_text(json.dumps(data, indent=1))
    # The RLE is what pycocotools reads back.
    decoded = coco_mask.decode(coco_mask.frPyObjects(crowd, 24, 32))
    assert np.array_equal(decoded, crowd_mask)


def numerical_copy(serialized, masks):
    """The example with its masks as `num_boxes * height * width` floats."""
    example = tf.train.Example.FromString(serialized)
    example.features.feature["image/object/mask"].CopyFrom(
        dataset_util.float_list_feature(masks.ravel().tolist())
    )
    return example.SerializeToString()


def decode_all(record, mask_type):
    decoder = tf_example_decoder.TfExampleDecoder(
        load_instance_masks=True, instance_mask_type=mask_type
    )
    decode = tf.function(decoder.decode)
    return [decode(serialized) for serialized in tf.data.TFRecordDataset(str(record))]


def main():
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    write_inputs()
    png_record = OUTPUT_DIR / "png_masks.record"
    with tempfile.TemporaryDirectory() as tmp:
        output = pathlib.Path(tmp) / "masks.record"
        create_coco_tf_record._create_tf_record_from_coco_annotations(
            str(INPUT_DIR / "instances.json"),
            str(INPUT_DIR / "images"),
            str(output),
            include_masks=True,
            num_shards=1,
        )
        shutil.copyfile(f"{output}-00000-of-00001", png_record)

    arrays = {}
    numerical = []
    serialized = [s.numpy() for s in tf.data.TFRecordDataset(str(png_record))]
    for index, decoded in enumerate(decode_all(png_record, input_reader_pb2.PNG_MASKS)):
        masks = decoded[fields.InputDataFields.groundtruth_instance_masks].numpy()
        arrays[f"png_masks_{index}"] = masks
        arrays[f"boxes_{index}"] = decoded[fields.InputDataFields.groundtruth_boxes].numpy()
        numerical.append(numerical_copy(serialized[index], masks))
    numerical_record = OUTPUT_DIR / "numerical_masks.record"
    with tf.io.TFRecordWriter(str(numerical_record)) as writer:
        for example in numerical:
            writer.write(example)
    for index, decoded in enumerate(
        decode_all(numerical_record, input_reader_pb2.NUMERICAL_MASKS)
    ):
        arrays[f"numerical_masks_{index}"] = decoded[
            fields.InputDataFields.groundtruth_instance_masks
        ].numpy()
    np.savez_compressed(OUTPUT_DIR / "decoded.npz", **arrays)
    print(f"wrote {png_record}, {numerical_record} and decoded.npz: "
          + ", ".join(f"{k} {v.shape}" for k, v in sorted(arrays.items())))


if __name__ == "__main__":
    main()
