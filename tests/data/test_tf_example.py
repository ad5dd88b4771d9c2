import hashlib

import numpy as np
import pytest
import tensorflow as tf

from kdet.data import tf_example
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import decode_tf_example
from kdet.data.tf_example import encode_image
from kdet.data.tf_example import image_format_of

# The TF OD API `TfExampleDecoder.keys_to_features` (data_decoders/tf_example_decoder.py),
# replicated so the test does not need the TF OD API installed.
TF_OD_API_KEYS_TO_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/format": tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    "image/filename": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/key/sha256": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/source_id": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/height": tf.io.FixedLenFeature((), tf.int64, default_value=1),
    "image/width": tf.io.FixedLenFeature((), tf.int64, default_value=1),
    "image/class/text": tf.io.VarLenFeature(tf.string),
    "image/class/label": tf.io.VarLenFeature(tf.int64),
    "image/neg_category_ids": tf.io.VarLenFeature(tf.int64),
    "image/not_exhaustive_category_ids": tf.io.VarLenFeature(tf.int64),
    "image/class/confidence": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/object/class/text": tf.io.VarLenFeature(tf.string),
    "image/object/area": tf.io.VarLenFeature(tf.float32),
    "image/object/is_crowd": tf.io.VarLenFeature(tf.int64),
    "image/object/difficult": tf.io.VarLenFeature(tf.int64),
    "image/object/group_of": tf.io.VarLenFeature(tf.int64),
    "image/object/weight": tf.io.VarLenFeature(tf.float32),
}


# `object_detection/utils/dataset_util.py` feature helpers, as the TF OD API tools use them.
def int64_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def int64_list_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=value))


def bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def bytes_list_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=value))


def float_list_feature(value):
    return tf.train.Feature(float_list=tf.train.FloatList(value=value))


def random_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pascal_style_record(encoded_jpg, data, label_map_dict):
    """Builds a record the way `create_pascal_tf_record.dict_to_tf_example` does."""
    width, height = int(data["size"]["width"]), int(data["size"]["height"])
    xmin, ymin, xmax, ymax, classes, classes_text, truncated, poses, difficult_obj = (
        [] for _ in range(9)
    )
    for obj in data["object"]:
        difficult_obj.append(int(bool(int(obj["difficult"]))))
        xmin.append(float(obj["bndbox"]["xmin"]) / width)
        ymin.append(float(obj["bndbox"]["ymin"]) / height)
        xmax.append(float(obj["bndbox"]["xmax"]) / width)
        ymax.append(float(obj["bndbox"]["ymax"]) / height)
        classes_text.append(obj["name"].encode("utf8"))
        classes.append(label_map_dict[obj["name"]])
        truncated.append(int(obj["truncated"]))
        poses.append(obj["pose"].encode("utf8"))
    key = hashlib.sha256(encoded_jpg).hexdigest()
    feature = {
        "image/height": int64_feature(height),
        "image/width": int64_feature(width),
        "image/filename": bytes_feature(data["filename"].encode("utf8")),
        "image/source_id": bytes_feature(data["filename"].encode("utf8")),
        "image/key/sha256": bytes_feature(key.encode("utf8")),
        "image/encoded": bytes_feature(encoded_jpg),
        "image/format": bytes_feature("jpeg".encode("utf8")),
        "image/object/bbox/xmin": float_list_feature(xmin),
        "image/object/bbox/xmax": float_list_feature(xmax),
        "image/object/bbox/ymin": float_list_feature(ymin),
        "image/object/bbox/ymax": float_list_feature(ymax),
        "image/object/class/text": bytes_list_feature(classes_text),
        "image/object/class/label": int64_list_feature(classes),
        "image/object/difficult": int64_list_feature(difficult_obj),
        "image/object/truncated": int64_list_feature(truncated),
        "image/object/view": bytes_list_feature(poses),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def coco_style_record(encoded_jpg, image, bbox_annotations, category_index):
    """Builds a record the way `create_coco_tf_record.create_tf_example` does."""
    image_height, image_width = image["height"], image["width"]
    feature_dict = {
        "image/height": int64_feature(image_height),
        "image/width": int64_feature(image_width),
        "image/filename": bytes_feature(image["file_name"].encode("utf8")),
        "image/source_id": bytes_feature(str(image["id"]).encode("utf8")),
        "image/key/sha256": bytes_feature(hashlib.sha256(encoded_jpg).hexdigest().encode("utf8")),
        "image/encoded": bytes_feature(encoded_jpg),
        "image/format": bytes_feature("jpeg".encode("utf8")),
    }
    if bbox_annotations:  # The TF OD API writes no object keys at all for an empty image.
        xmin, xmax, ymin, ymax, is_crowd, names, ids, area = ([] for _ in range(8))
        for annotation in bbox_annotations:
            x, y, width, height = annotation["bbox"]
            xmin.append(float(x) / image_width)
            xmax.append(float(x + width) / image_width)
            ymin.append(float(y) / image_height)
            ymax.append(float(y + height) / image_height)
            is_crowd.append(annotation["iscrowd"])
            ids.append(int(annotation["category_id"]))
            names.append(category_index[annotation["category_id"]]["name"].encode("utf8"))
            area.append(annotation["area"])
        feature_dict.update(
            {
                "image/object/bbox/xmin": float_list_feature(xmin),
                "image/object/bbox/xmax": float_list_feature(xmax),
                "image/object/bbox/ymin": float_list_feature(ymin),
                "image/object/bbox/ymax": float_list_feature(ymax),
                "image/object/class/text": bytes_list_feature(names),
                "image/object/class/label": int64_list_feature(ids),
                "image/object/is_crowd": int64_list_feature(is_crowd),
                "image/object/area": float_list_feature(area),
            }
        )
    return tf.train.Example(features=tf.train.Features(feature=feature_dict)).SerializeToString()


def test_round_trip_png():
    image = random_image(8, 12)
    encoded = encode_image(image, "png")
    boxes = [[0.1, 0.2, 0.5, 0.75], [0.0, 0.0, 1.0, 1.0]]
    example = create_tf_example(
        encoded, 8, 12, boxes, [2, 1], ["dog", "cat"], filename="a.png", difficult=[0, 1],
        truncated=[1, 0], is_crowd=[0, 1], area=[12.5, 96.0],
    )
    decoded = decode_tf_example(example.SerializeToString())
    np.testing.assert_array_equal(decoded["image"], image)
    np.testing.assert_allclose(decoded["boxes"], boxes, rtol=1e-6)
    assert decoded["boxes"].dtype == tf.float32
    assert decoded["labels"].numpy().tolist() == [2, 1]
    assert decoded["labels"].dtype == tf.int32
    assert decoded["texts"].numpy().tolist() == [b"dog", b"cat"]
    assert decoded["difficult"].numpy().tolist() == [0, 1]
    assert decoded["truncated"].numpy().tolist() == [1, 0]
    assert decoded["is_crowd"].numpy().tolist() == [0, 1]
    np.testing.assert_allclose(decoded["area"], [12.5, 96.0])
    np.testing.assert_allclose(decoded["weights"], [1.0, 1.0])
    assert decoded["filename"].numpy() == decoded["source_id"].numpy() == b"a.png"
    assert decoded["key"].numpy() == hashlib.sha256(encoded).hexdigest().encode()
    assert decoded["format"].numpy() == b"png"
    assert (decoded["height"].numpy(), decoded["width"].numpy()) == (8, 12)


def test_zero_boxes_and_graph_mode_with_label_map():
    encoded = encode_image(random_image(6, 6), "jpeg")
    empty = create_tf_example(encoded, 6, 6, np.zeros((0, 4)), [], []).SerializeToString()
    full = create_tf_example(
        encoded, 6, 6, [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [9, 9], ["cat", "zebra"]
    ).SerializeToString()
    dataset = tf.data.Dataset.from_tensor_slices([empty, full]).map(
        lambda record: decode_tf_example(record, label_map={1: "cat", 2: "dog"})
    )
    first, second = list(dataset)
    assert first["boxes"].shape == (0, 4)
    assert first["labels"].shape == (0,)
    assert first["area"].shape == (0,)
    # With a label map the ids come from the texts (unknown names → -1), as in the TF OD API.
    assert second["labels"].numpy().tolist() == [1, -1]
    assert second["image"].shape == (6, 6, 3)


def test_decodes_a_create_pascal_tf_record_example():
    encoded = encode_image(random_image(20, 40), "jpeg")
    data = {
        "filename": "2007_000027.jpg",
        "size": {"width": "40", "height": "20"},
        "object": [
            {"name": "person", "difficult": "0", "truncated": "1", "pose": "Frontal",
             "bndbox": {"xmin": "4", "ymin": "2", "xmax": "20", "ymax": "18"}},
            {"name": "dog", "difficult": "1", "truncated": "0", "pose": "Left",
             "bndbox": {"xmin": "10", "ymin": "5", "xmax": "40", "ymax": "20"}},
        ],
    }
    record = pascal_style_record(encoded, data, {"dog": 12, "person": 15})
    decoded = decode_tf_example(record)
    np.testing.assert_allclose(
        decoded["boxes"], [[0.1, 0.1, 0.9, 0.5], [0.25, 0.25, 1.0, 1.0]], rtol=1e-6
    )
    assert decoded["labels"].numpy().tolist() == [15, 12]
    assert decoded["texts"].numpy().tolist() == [b"person", b"dog"]
    assert decoded["difficult"].numpy().tolist() == [0, 1]
    assert decoded["truncated"].numpy().tolist() == [1, 0]
    assert decoded["is_crowd"].numpy().tolist() == [0, 0]
    np.testing.assert_allclose(decoded["area"], [-1.0, -1.0])
    assert decoded["image"].shape == (20, 40, 3)
    assert decoded["filename"].numpy() == b"2007_000027.jpg"
    # Labels from texts with a kdet label map give the same ids.
    by_text = decode_tf_example(record, label_map={12: "dog", 15: "person"})
    assert by_text["labels"].numpy().tolist() == [15, 12]


def test_decodes_create_coco_tf_record_examples_with_and_without_boxes():
    encoded = encode_image(random_image(10, 20), "jpeg")
    category_index = {1: {"id": 1, "name": "person"}, 18: {"id": 18, "name": "dog"}}
    image = {"id": 397133, "file_name": "000000397133.jpg", "height": 10, "width": 20}
    annotations = [
        {"bbox": [2.0, 1.0, 8.0, 4.0], "iscrowd": 0, "category_id": 18, "area": 30.5},
        {"bbox": [0.0, 0.0, 20.0, 10.0], "iscrowd": 1, "category_id": 1, "area": 150.0},
    ]
    decoded = decode_tf_example(coco_style_record(encoded, image, annotations, category_index))
    np.testing.assert_allclose(
        decoded["boxes"], [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]], rtol=1e-6
    )
    assert decoded["labels"].numpy().tolist() == [18, 1]
    assert decoded["is_crowd"].numpy().tolist() == [0, 1]
    np.testing.assert_allclose(decoded["area"], [30.5, 150.0])
    assert decoded["source_id"].numpy() == b"397133"

    empty = decode_tf_example(coco_style_record(encoded, image, [], category_index))
    assert empty["boxes"].shape == (0, 4)
    assert empty["labels"].shape == empty["is_crowd"].shape == (0,)
    assert empty["texts"].shape == (0,)


def test_kdet_record_parses_with_the_tf_od_api_spec():
    encoded = encode_image(random_image(8, 8), "jpeg")
    example = create_tf_example(
        encoded, 8, 8, [[0.25, 0.125, 0.75, 1.0]], [3], ["cat"], filename="x.jpg",
        source_id="42", difficult=[1], is_crowd=[0], area=[16.0], truncated=[0], view=["Left"],
    )
    parsed = tf.io.parse_single_example(example.SerializeToString(), TF_OD_API_KEYS_TO_FEATURES)

    def dense(key):
        return tf.sparse.to_dense(parsed[key]).numpy().tolist()

    assert parsed["image/encoded"].numpy() == encoded
    assert parsed["image/format"].numpy() == b"jpeg"
    assert parsed["image/filename"].numpy() == b"x.jpg"
    assert parsed["image/source_id"].numpy() == b"42"
    assert parsed["image/key/sha256"].numpy() == hashlib.sha256(encoded).hexdigest().encode()
    assert (parsed["image/height"].numpy(), parsed["image/width"].numpy()) == (8, 8)
    assert [dense(f"image/object/bbox/{k}") for k in ("ymin", "xmin", "ymax", "xmax")] == [
        [0.25], [0.125], [0.75], [1.0]
    ]
    assert dense("image/object/class/label") == [3]
    assert dense("image/object/class/text") == [b"cat"]
    assert dense("image/object/difficult") == [1]
    assert dense("image/object/is_crowd") == [0]
    assert dense("image/object/area") == [16.0]
    assert dense("image/object/weight") == dense("image/object/group_of") == []


def test_feature_spec_scalar_defaults_match_the_tf_od_api():
    for key, feature in tf_example._SCALAR_FEATURES.items():
        assert feature == TF_OD_API_KEYS_TO_FEATURES[key], key


def test_image_format_of_and_errors():
    image = random_image(4, 4)
    assert image_format_of(encode_image(image, "png")) == b"png"
    assert image_format_of(encode_image(image, "jpeg")) == b"jpeg"
    with pytest.raises(ValueError, match="not a readable image"):
        image_format_of(b"not an image")
    with pytest.raises(ValueError, match="must be uint8"):
        encode_image(image.astype(np.float32))
    with pytest.raises(ValueError, match="one label and one text per box"):
        create_tf_example(encode_image(image), 4, 4, [[0, 0, 1, 1]], [1, 2], ["a"])
