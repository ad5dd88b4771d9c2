"""`train_input_reader` / `eval_input_reader`: the fields of `input_reader.proto`."""

import pytest

from kdet.configs.field_reader import Node
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.configs.train_builder import build_input_reader_arguments


def _arguments(text):
    node = Node(parse('tf_record_input_reader { input_path: "a.record" } ' + text, "r.config"),
                "train_input_reader")
    return build_input_reader_arguments(node)


def test_deprecated_queue_fields_are_read_and_change_nothing():
    plain = _arguments("")
    assert _arguments(
        "queue_capacity: 10 min_after_dequeue: 5 prefetch_size: 3 num_parallel_map_calls: 2"
    ) == plain
    with pytest.raises(ConfigError, match="queue_capacity"):
        _arguments("queue_capacity: -1")


def test_reader_fields_become_read_tfrecords_arguments():
    arguments = _arguments(
        "shuffle: false num_epochs: 3 num_readers: 2 sample_1_of_n_examples: 4 "
        "max_number_of_boxes: 7 num_parallel_batches: 3 label_map_path: 'm.pbtxt'"
    )
    assert arguments["shuffle"] is False and arguments["num_epochs"] == 3
    assert (arguments["num_readers"], arguments["sample_1_of_n_examples"]) == (2, 4)
    assert (arguments["max_num_boxes"], arguments["num_parallel_calls"]) == (7, 3)
    assert arguments["label_map"] == "m.pbtxt" and arguments["input_paths"] == ["a.record"]


@pytest.mark.parametrize(("text", "reason"), [("use_display_name: true", "name")])
def test_what_kdet_cannot_read_is_refused_with_the_reason(text, reason):
    with pytest.raises(ConfigError, match=reason):
        _arguments(text)


def test_instance_masks_and_their_type():
    assert _arguments("")["load_instance_masks"] is False
    # NUMERICAL_MASKS by default, as in input_reader.proto; DEFAULT reads the same way.
    assert _arguments("")["mask_type"] == "numerical"
    assert _arguments("mask_type: DEFAULT")["mask_type"] == "numerical"
    arguments = _arguments("load_instance_masks: true mask_type: PNG_MASKS")
    assert arguments["load_instance_masks"] is True and arguments["mask_type"] == "png"
    with pytest.raises(ConfigError, match="mask_type"):
        _arguments("mask_type: RLE_MASKS")
