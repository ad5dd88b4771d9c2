"""export_saved_model: the TF OD API serving signature, served where kdet cannot be imported."""

import io

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

import kdet
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import encode_image
from kdet.export import DEFAULT_MAX_IMAGE_PIXELS
from kdet.export import encoded_image_size
from kdet.export import export_saved_model
from kdet_free_runner import run_without_kdet
from tiny_detectors import IMAGE_SIZE
from tiny_detectors import assert_same_detections
from tiny_detectors import assert_top_detections_found
from tiny_detectors import from_tf_od_api_outputs
from tiny_detectors import images
from tiny_detectors import tiny_faster_rcnn
from tiny_detectors import tiny_ssd

OUTPUTS = {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}


def _png_batch(arrays):
    return [encode_image(array, "png") for array in arrays]


def _tf_example_batch(arrays):
    return [
        create_tf_example(encode_image(array, "png"), *array.shape[:2], [], [], [])
        .SerializeToString()
        for array in arrays
    ]


@pytest.fixture(scope="module")
def model():
    return tiny_ssd()


# The encoded-image export's pixel limit: the 96 x 192 image of the first test is at it.
MAX_IMAGE_PIXELS = 2 * IMAGE_SIZE * IMAGE_SIZE


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """`{input_type: SavedModel directory}` of `model`, one export per input type.

    The `encoded_image_string_tensor` one takes at most `MAX_IMAGE_PIXELS` pixels per image;
    the `tf_example` one has the default limit.
    """
    root = tmp_path_factory.mktemp("saved_models")
    directories = {}
    for input_type in kdet.export.INPUT_TYPES:
        directories[input_type] = root / input_type
        limit = {"encoded_image_string_tensor": MAX_IMAGE_PIXELS}
        export_saved_model(model, directories[input_type], input_type,
                           max_image_pixels=limit.get(input_type, DEFAULT_MAX_IMAGE_PIXELS))
    return directories


def test_every_input_type_serves_the_models_detections_where_kdet_cannot_be_imported(
    model, exported, tmp_path
):
    square = images(2)
    wide = np.concatenate([images(1, seed=1), images(1, seed=2)], axis=2)  # 96 x 192
    requests = [
        (exported["image_tensor"], square),
        (exported["encoded_image_string_tensor"], _png_batch(square)),
        (exported["tf_example"], _tf_example_batch(square)),
        # A batch of files of different sizes: each image runs on its own.
        (exported["encoded_image_string_tensor"], _png_batch([square[0], wide[0]])),
    ]
    outputs = run_without_kdet(requests, tmp_path)

    want = model.predict_on_batch(square)
    assert want["num_detections"].min() > 0
    for served in outputs[:3]:
        assert set(served) == OUTPUTS
        assert all(value.dtype == np.float32 for value in served.values())
        assert served["detection_boxes"].shape == (2, model.max_detections, 4)
        assert_same_detections(from_tf_od_api_outputs(served, IMAGE_SIZE, IMAGE_SIZE), want)
    mixed = outputs[3]
    for index, (image, width) in enumerate([(square[:1], IMAGE_SIZE), (wide, 2 * IMAGE_SIZE)]):
        served = {name: value[index : index + 1] for name, value in mixed.items()}
        assert_same_detections(
            from_tf_od_api_outputs(served, IMAGE_SIZE, width), model.predict_on_batch(image)
        )


def test_padding_rows_are_zeros_as_in_the_tf_od_api(tmp_path):
    model = kdet.SSD(
        num_classes=3,
        feature_extractor=kdet.feature_extractors.SSDMobileNetV2FeatureExtractor(
            depth_multiplier=0.35
        ),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        score_threshold=0.0,
        max_detections_per_class=2,
        max_detections=10,
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    export_saved_model(model, tmp_path)
    served = tf.saved_model.load(str(tmp_path))(tf.constant(images(1)))
    assert served["num_detections"].numpy().tolist() == [6.0]  # 3 classes x 2
    assert (served["detection_classes"].numpy()[0, :6] >= 1).all()
    for name in ("detection_boxes", "detection_scores", "detection_classes"):
        assert (served[name].numpy()[0, 6:] == 0).all(), name


def test_faster_rcnn_exports_too(tmp_path):
    model = tiny_faster_rcnn()
    export_saved_model(model, tmp_path)
    square = images(2)
    served = tf.saved_model.load(str(tmp_path)).signatures["serving_default"](
        input_tensor=tf.constant(square)
    )
    got = from_tf_od_api_outputs(
        {name: value.numpy() for name, value in served.items()}, IMAGE_SIZE, IMAGE_SIZE
    )
    assert_top_detections_found(got, model.predict_on_batch(square))


@pytest.mark.parametrize(
    "input_type, bad_input, message",
    [
        ("image_tensor", tf.zeros([1, 8, 8, 3], tf.float32),
         "expected to be a uint8 tensor but is a float tensor"),
        ("image_tensor", tf.zeros([8, 8, 3], tf.uint8),
         r"input_tensor \[8,8,3\] is not compatible with expected shape \[\?,\?,\?,3\]"),
        ("image_tensor", tf.zeros([1, 8, 8, 4], tf.uint8),
         r"input_tensor \[1,8,8,4\] is not compatible with expected shape \[\?,\?,\?,3\]"),
        ("image_tensor", tf.zeros([1, 0, 8, 3], tf.uint8),
         "input_tensor: images must be at least 1x1 pixels"),
        ("image_tensor", tf.zeros([0, 64, 64, 3], tf.uint8),
         "input_tensor: a batch of 0 images; expected at least 1 image"),
        ("encoded_image_string_tensor", tf.zeros([1, 8, 8, 3], tf.uint8),
         "expected to be a string tensor but is a uint8 tensor"),
        ("encoded_image_string_tensor", tf.constant(b"x.png"),
         r"input_tensor \[\] is not compatible with expected shape \[\?\]"),
        ("encoded_image_string_tensor", tf.constant([b"not an image"]),
         "Unknown image file format"),
        ("tf_example", tf.constant([b"not an example"]), "Could not parse example input"),
    ],
)
def test_bad_inputs_fail_at_the_input_with_a_clear_error(exported, input_type, bad_input,
                                                         message):
    loaded = tf.saved_model.load(str(exported[input_type]))
    for serve in (loaded, lambda tensor: loaded.signatures["serving_default"](input_tensor=tensor)):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message) as error:
            serve(bad_input)
        # Caught at the input, not deep in the network.
        assert "ssd" not in str(error.value).split("Detected at node")[-1].split("\n")[0]


def _png(height, width, mode="RGB"):
    buffer = io.BytesIO()
    PIL.Image.new(mode, (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own limit
def test_images_over_the_pixel_limit_are_refused_from_their_header(exported):
    # One row over the encoded export's limit; a 17.6 KB 1-bit PNG of 12000 x 12000 pixels (the
    # reliability report's, which cost 2.2 GB to serve) against the default limit: refused
    # before any pixel is decoded.
    requests = [
        ("encoded_image_string_tensor", _png(2 * IMAGE_SIZE + 1, IMAGE_SIZE), IMAGE_SIZE,
         2 * IMAGE_SIZE + 1, MAX_IMAGE_PIXELS),
        ("tf_example", create_tf_example(_png(12000, 12000, "1"), 12000, 12000, [], [], [])
         .SerializeToString(), 12000, 12000, DEFAULT_MAX_IMAGE_PIXELS),
    ]
    for input_type, request, width, height, limit in requests:
        loaded = tf.saved_model.load(str(exported[input_type]))
        with pytest.raises(tf.errors.InvalidArgumentError, match=(
            f"input_tensor: image of {width}x{height} pixels \\(width x height\\) is over the "
            f"limit of {limit} pixels this model was exported with \\(max_image_pixels\\)"
        )):
            loaded(tf.constant([request]))


@pytest.mark.parametrize("image_format, options", [
    ("JPEG", {}), ("PNG", {}), ("GIF", {}), ("BMP", {}), ("WEBP", {}),
    ("WEBP", {"lossless": True}), ("WEBP", {"exif": b"Exif\0\0kdet"}),  # VP8, VP8L, VP8X
])
def test_encoded_image_size_reads_every_decodable_format_from_its_header(image_format, options):
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (37, 23), (10, 20, 30)).save(buffer, image_format, **options)
    encoded = tf.constant(buffer.getvalue())
    assert encoded_image_size(encoded).numpy().tolist() == [23, 37]
    assert tf.io.decode_image(encoded, expand_animations=False).shape[:2] == (23, 37)


def test_encoded_image_size_of_a_top_down_bmp_and_of_unknown_bytes():
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (5, 3)).save(buffer, "BMP")
    top_down = bytearray(buffer.getvalue())
    top_down[22:26] = (-3).to_bytes(4, "little", signed=True)
    assert encoded_image_size(tf.constant(bytes(top_down))).numpy().tolist() == [3, 5]
    for garbage in (b"", b"GIF", b"not an image"):
        with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
            encoded_image_size(tf.constant(garbage))


@pytest.mark.parametrize("limit", [0, -5, 2.5, "big"])
def test_a_bad_pixel_limit_is_rejected_before_any_work(tmp_path, limit):
    with pytest.raises(ValueError, match=f"max_image_pixels must be a positive int or None; "
                                         f"got {limit!r}"):
        export_saved_model(object(), tmp_path, max_image_pixels=limit)


def test_unknown_input_type_is_rejected_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"input_type must be one of .*'image_tensor'.*'jpeg'"):
        export_saved_model(object(), tmp_path, "jpeg")
