import numpy as np
import pytest
import tensorflow as tf

from kdet.data.input_pipeline import list_input_files
from kdet.data.input_pipeline import pad_groundtruth
from kdet.data.input_pipeline import read_tfrecords
from kdet.data.input_pipeline import resize_image_and_boxes
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import encode_image

HEIGHT, WIDTH = 32, 48
BOX = [0.25, 0.5, 0.75, 1.0]  # rel_yxyx: pixels y 8..24, x 24..48 of a 32x48 image


def write_shards(directory, num_shards=3, per_shard=4, sizes=None):
    """Writes `num_shards` TFRecord shards; record `k` has `k % 4` boxes (all `BOX`), labels
    1, 2, 3 and source id `"k"`."""
    index = 0
    for shard in range(num_shards):
        with tf.io.TFRecordWriter(str(directory / f"train-{shard:05d}.tfrecord")) as writer:
            for _ in range(per_shard):
                height, width = sizes[index] if sizes else (HEIGHT, WIDTH)
                image = np.full([height, width, 3], index, np.uint8)
                num_boxes = index % 4
                example = create_tf_example(
                    encode_image(image, "png"),
                    height,
                    width,
                    [BOX] * num_boxes,
                    list(range(1, num_boxes + 1)),
                    ["cat", "dog", "cow"][:num_boxes],
                    filename=f"{index}.png",
                    source_id=str(index),
                )
                writer.write(example.SerializeToString())
                index += 1
    return str(directory / "train-*.tfrecord")


@pytest.fixture
def shards(tmp_path):
    return write_shards(tmp_path)


def source_ids(dataset):
    return [int(m["source_id"]) for _, _, m in dataset.unbatch()]


def test_glob_reads_all_shards_in_order_without_shuffle(shards, tmp_path):
    dataset = read_tfrecords(shards, shuffle=False, return_metadata=True, batch_size=5)
    assert source_ids(dataset) == list(range(12))
    files = sorted(tmp_path.glob("train-*.tfrecord"))
    listed = read_tfrecords(files[:2], shuffle=False, return_metadata=True, batch_size=5)
    assert source_ids(listed) == list(range(8))


def test_shuffle_without_seed_still_reads_every_record_once(shards):
    dataset = read_tfrecords(shards, shuffle=True, return_metadata=True, batch_size=4)
    assert sorted(source_ids(dataset)) == list(range(12))


def test_num_epochs_repeats_and_zero_repeats_forever(shards):
    dataset = read_tfrecords(
        shards, shuffle=False, num_epochs=2, return_metadata=True, batch_size=6
    )
    assert source_ids(dataset) == list(range(12)) * 2
    forever = read_tfrecords(shards, num_epochs=0, batch_size=5)
    assert sum(1 for _ in forever.take(10)) == 10


def test_sample_1_of_n_examples_keeps_every_nth_record(shards):
    dataset = read_tfrecords(
        shards, shuffle=False, sample_1_of_n_examples=3, return_metadata=True, batch_size=5
    )
    assert source_ids(dataset) == [0, 3, 6, 9]


def test_padding_truncation_and_zero_box_images(shards):
    dataset = read_tfrecords(
        shards, shuffle=False, max_num_boxes=2, batch_size=4, bounding_box_format="rel_yxyx"
    )
    _, y = next(iter(dataset))
    assert y["labels"].numpy().tolist() == [[-1, -1], [1, -1], [1, 2], [1, 2]]
    np.testing.assert_array_equal(y["boxes"][0], -np.ones([2, 4]))
    np.testing.assert_allclose(y["boxes"][3], [BOX, BOX])


def test_shapes_and_dtypes_with_and_without_resize(shards):
    images, y = next(iter(read_tfrecords(shards, batch_size=3, image_size=(20, 24))))
    assert images.shape == (3, 20, 24, 3) and images.dtype == tf.float32
    assert y["boxes"].shape == (3, 100, 4) and y["boxes"].dtype == tf.float32
    assert y["labels"].shape == (3, 100) and y["labels"].dtype == tf.int32
    images, y = next(iter(read_tfrecords(shards, batch_size=3, max_num_boxes=5)))
    assert images.shape == (3, HEIGHT, WIDTH, 3) and images.dtype == tf.uint8
    image, y = next(iter(read_tfrecords(shards, image_size=16)))
    assert image.shape == (16, 16, 3) and y["boxes"].shape == (100, 4)


def test_boxes_in_pixels_after_stretch_resize(shards):
    dataset = read_tfrecords(
        shards, shuffle=False, image_size=(64, 64), max_num_boxes=1, batch_size=2
    )
    _, y = next(iter(dataset))
    np.testing.assert_allclose(y["boxes"][1], [[16.0, 32.0, 48.0, 64.0]])
    dataset = read_tfrecords(
        shards,
        shuffle=False,
        image_size=(64, 64),
        max_num_boxes=1,
        batch_size=2,
        bounding_box_format="xyxy",
    )
    np.testing.assert_allclose(next(iter(dataset))[1]["boxes"][1], [[32.0, 16.0, 64.0, 48.0]])


def test_boxes_and_pixels_after_aspect_preserving_resize(shards):
    # 32x48 into 96x96 keeps the aspect: scale 2, content 64x96 at the top, zero padding below.
    dataset = read_tfrecords(
        shards,
        shuffle=False,
        image_size=(96, 96),
        pad_to_aspect_ratio=True,
        max_num_boxes=1,
        batch_size=2,
        return_metadata=True,
    )
    images, y, metadata = next(iter(dataset))
    np.testing.assert_allclose(y["boxes"][1], [[16.0, 48.0, 48.0, 96.0]])
    assert metadata["true_image_shape"].numpy().tolist() == [[64, 96], [64, 96]]
    assert metadata["original_image_shape"].numpy().tolist() == [[32, 48], [32, 48]]
    np.testing.assert_allclose(images[1, :64], 1.0)
    np.testing.assert_allclose(images[1, 64:], 0.0)


def test_boxes_in_pixels_without_resize(shards):
    dataset = read_tfrecords(
        shards, shuffle=False, max_num_boxes=1, batch_size=2, bounding_box_format="xywh"
    )
    np.testing.assert_allclose(next(iter(dataset))[1]["boxes"][1], [[24.0, 8.0, 24.0, 16.0]])


def test_no_matching_file_names_the_pattern(tmp_path):
    with pytest.raises(ValueError, match="missing-\\*.tfrecord"):
        read_tfrecords(str(tmp_path / "missing-*.tfrecord"))
    with pytest.raises(ValueError, match="empty"):
        list_input_files([])


def test_deterministic_without_shuffle(shards):
    def read():
        dataset = read_tfrecords(
            shards,
            shuffle=False,
            image_size=(16, 16),
            batch_size=4,
            num_readers=3,
            read_block_length=1,
            return_metadata=True,
        )
        return [(x.numpy(), m["source_id"].numpy().tolist()) for x, _, m in dataset]

    first, second = read(), read()
    assert [ids for _, ids in first] == [ids for _, ids in second]
    # Three readers, one record at a time from each shard.
    assert [int(i) for i in first[0][1]] == [0, 4, 8, 1]


def test_seed_makes_shuffle_and_augmentation_reproducible(shards):
    def read():
        dataset = read_tfrecords(
            shards,
            image_size=(16, 16),
            batch_size=4,
            seed=11,
            return_metadata=True,
            augmentation=[
                {"random_horizontal_flip": {}},
                {"ssd_random_crop": {}},
                {"random_adjust_brightness": {}},
            ],
        )
        return [(x.numpy(), y["boxes"].numpy(), m["source_id"].numpy()) for x, y, m in dataset]

    first, second = read(), read()
    for a, b in zip(first, second, strict=True):
        for array_a, array_b in zip(a, b, strict=True):
            np.testing.assert_array_equal(array_a, array_b)


def test_augmentation_callable_and_flip(shards):
    def flip_all(image, boxes, labels):
        return (
            tf.image.flip_left_right(image),
            tf.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2], 1 - boxes[:, 1]], -1),
            labels,
        )

    dataset = read_tfrecords(
        shards, shuffle=False, augmentation=flip_all, max_num_boxes=1, batch_size=2
    )
    np.testing.assert_allclose(next(iter(dataset))[1]["boxes"][1], [[8.0, 0.0, 24.0, 24.0]])
    options = [{"random_horizontal_flip": {"probability": 1.0}}]
    dataset = read_tfrecords(
        shards, shuffle=False, augmentation=options, max_num_boxes=1, batch_size=2
    )
    np.testing.assert_allclose(next(iter(dataset))[1]["boxes"][1], [[8.0, 0.0, 24.0, 24.0]])


def test_batching_different_sizes_without_image_size_fails_clearly(tmp_path):
    sizes = [(HEIGHT, WIDTH), (16, 16), (HEIGHT, WIDTH)]
    pattern = write_shards(tmp_path, num_shards=1, per_shard=3, sizes=sizes)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pass image_size"):
        list(read_tfrecords(pattern, shuffle=False, batch_size=3))
    assert len(list(read_tfrecords(pattern, shuffle=False))) == 3  # unbatched is fine


def test_label_map_drops_boxes_of_unknown_classes(shards):
    dataset = read_tfrecords(
        shards, shuffle=False, label_map={5: "dog", 7: "cow"}, max_num_boxes=3, batch_size=4
    )
    _, y = next(iter(dataset))
    assert y["labels"].numpy().tolist()[3] == [5, 7, -1]


def test_drop_remainder(shards):
    dataset = read_tfrecords(shards, batch_size=5, drop_remainder=True, image_size=16)
    assert [int(x.shape[0]) for x, _ in dataset] == [5, 5]
    # Static shapes, as `fit` under tf.distribute and XLA want them.
    assert dataset.element_spec[0].shape == (5, 16, 16, 3)
    assert dataset.element_spec[1]["boxes"].shape == (5, 100, 4)


def test_pad_groundtruth_hand_checked():
    boxes, labels = pad_groundtruth([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], [3, 4], 3)
    np.testing.assert_array_equal(boxes, [[1, 2, 3, 4], [5, 6, 7, 8], [-1, -1, -1, -1]])
    assert labels.numpy().tolist() == [3, 4, -1]
    boxes, labels = pad_groundtruth(tf.zeros([0, 4]), tf.zeros([0], tf.int64), 2)
    assert labels.dtype == tf.int32 and labels.numpy().tolist() == [-1, -1]
    traced = tf.function(lambda boxes, labels: pad_groundtruth(boxes, labels, 1))
    boxes, labels = traced(tf.ones([3, 4]), tf.constant([1, 2, 3]))
    assert boxes.shape == (1, 4) and labels.numpy().tolist() == [1]


def test_resize_image_and_boxes_pads_bottom_right():
    image = tf.fill([10, 20, 3], tf.constant(255, tf.uint8))
    resized, boxes, true_shape = resize_image_and_boxes(
        image, tf.constant([[0.0, 0.0, 1.0, 1.0]]), (40, 40), pad_to_aspect_ratio=True
    )
    assert resized.dtype == tf.float32 and true_shape.numpy().tolist() == [20, 40]
    np.testing.assert_allclose(boxes, [[0.0, 0.0, 0.5, 1.0]])
    np.testing.assert_allclose(resized[:20], 255.0)
    np.testing.assert_allclose(resized[20:], 0.0)
