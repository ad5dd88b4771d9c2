"""Makes a keypoint TFRecord with the TF OD API's own COCO tool, and decodes it with its decoder.

Runs in the TF OD API venv (never in kdet's python):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python tools/tfod_reference/make_keypoint_record.py

Input: the tiny COCO person-keypoint annotations of `tests/data/coco_keypoints/` (two images,
persons with 17 keypoints, some labelled v=1/2 and some not, a person without labelled keypoints
and a non-person object). `dataset_tools/create_coco_tf_record.py`'s
`_create_tf_record_from_coco_annotations` converts them, with the JSON as the instances file and
its keypoint annotations (the annotations that have `keypoints`, as COCO's person_keypoints
files hold) as the keypoints file. Output, in `tests/data/tfod_reference/coco_keypoints/`:
- `coco_keypoints.record`: the two `tf.train.Example`s, as the TF OD API writes them;
- `decoded.npz`: what `TfExampleDecoder(num_keypoints=17)` decodes from them, per record `i`:
  `boxes_i` `[N, 4]`, `classes_i` `[N]`, `keypoints_i` `[N, 17, 2]` (y, x; NaN not labelled),
  `keypoint_visibilities_i` `[N, 17]` (bool).
kdet's tests decode the record and convert the same JSON and compare (tests/data/
test_keypoints_tfod.py).
"""

import json
import pathlib
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from object_detection.core import standard_fields as fields
from object_detection.data_decoders import tf_example_decoder
from object_detection.dataset_tools import create_coco_tf_record
from tensorflow.python.ops import control_flow_ops

# tf_slim's decoder (inside TfExampleDecoder) calls `control_flow_ops.case` and `.cond`, which
# TF 2.21 no longer has there; give it the public ops back (only in this script's process).
control_flow_ops.case = tf.compat.v1.case
control_flow_ops.cond = tf.compat.v1.cond

REPO = pathlib.Path(__file__).resolve().parents[2]
INPUT_DIR = REPO / "tests" / "data" / "coco_keypoints"
OUTPUT_DIR = REPO / "tests" / "data" / "tfod_reference" / "coco_keypoints"
NUM_KEYPOINTS = 17


def main():
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    annotations = INPUT_DIR / "person_keypoints.json"
    data = json.loads(annotations.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        keypoint_file = pathlib.Path(tmp) / "keypoints.json"
        keypoint_data = dict(data)
        keypoint_data["annotations"] = [a for a in data["annotations"] if "keypoints" in a]
        keypoint_file.write_text(json.dumps(keypoint_data))
        output = pathlib.Path(tmp) / "coco_keypoints.record"
        create_coco_tf_record._create_tf_record_from_coco_annotations(
            str(annotations),
            str(INPUT_DIR / "images"),
            str(output),
            include_masks=False,
            num_shards=1,
            keypoint_annotations_file=str(keypoint_file),
        )
        record = OUTPUT_DIR / "coco_keypoints.record"
        shutil.copyfile(f"{output}-00000-of-00001", record)

    decoder = tf_example_decoder.TfExampleDecoder(num_keypoints=NUM_KEYPOINTS)
    decode = tf.function(decoder.decode)
    arrays = {}
    for index, serialized in enumerate(tf.data.TFRecordDataset(str(record))):
        decoded = decode(serialized)
        arrays[f"boxes_{index}"] = decoded[fields.InputDataFields.groundtruth_boxes].numpy()
        arrays[f"classes_{index}"] = decoded[fields.InputDataFields.groundtruth_classes].numpy()
        arrays[f"keypoints_{index}"] = decoded[
            fields.InputDataFields.groundtruth_keypoints
        ].numpy()
        arrays[f"keypoint_visibilities_{index}"] = decoded[
            fields.InputDataFields.groundtruth_keypoint_visibilities
        ].numpy()
    np.savez(OUTPUT_DIR / "decoded.npz", **arrays)
    print(f"wrote {record} and {OUTPUT_DIR / 'decoded.npz'}: {sorted(arrays)}")


if __name__ == "__main__":
    main()
