"""kdet's YAML configs: the pipeline.config tree as YAML, both directions."""

import pytest

from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import String
from kdet.configs.field_reader import read
from kdet.configs.model_builder import build_model
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Identifier
from kdet.configs.text_format import Message
from kdet.configs.text_format import Word
from kdet.configs.text_format import parse
from kdet.configs.yaml_config import parse_yaml
from kdet.configs.yaml_config import to_yaml

SAMPLE = """
model { ssd {
  num_classes: 3
  anchor_generator { ssd_anchor_generator { aspect_ratios: 1.0 aspect_ratios: 2.0 } }
  feature_extractor { type: "ssd_mobilenet_v2" }
  post_processing { batch_non_max_suppression { score_threshold: 1e-8 } score_converter: SIGMOID }
  similarity_calculator { iou_similarity { } }
} }
train_config {
  data_augmentation_options { random_horizontal_flip { } }
  data_augmentation_options { random_adjust_brightness { max_delta: 0.2 } }
  fine_tune_checkpoint: "RELU_6"
  use_bfloat16: false
  num_steps: 0x10
}
"""


def _tree(message):
    """Field names and typed values, recursively (positions left out)."""
    return [
        (field.name, _tree(field.value) if isinstance(field.value, Message)
         # A YAML plain word (`Word`) is the text format's enum name (`Identifier`).
         else ("Identifier" if isinstance(field.value, Identifier) else type(field.value).__name__,
               field.value))
        for field in message.fields
    ]


def test_round_trip_keeps_every_field_value_and_type():
    original = parse(SAMPLE)
    text = to_yaml(original)
    assert "aspect_ratios: [1.0, 2.0]" in text
    assert "score_threshold: 1.0e-08" in text  # PyYAML reads "1e-08" as a string
    assert "score_converter: SIGMOID" in text and 'type: "ssd_mobilenet_v2"' in text
    assert "iou_similarity: {}" in text
    assert "- random_horizontal_flip: {}" in text
    assert "- random_adjust_brightness:\n" in text
    assert _tree(parse_yaml(text)) == _tree(original)


def test_quoted_words_stay_strings_and_plain_words_are_words():
    message = parse_yaml('a: SIGMOID\nb: "SIGMOID"\nc: 1.5\nd: true\ne: 7\n')
    values = {field.name: field.value for field in message.fields}
    assert type(values["a"]) is Word and type(values["b"]) is str
    assert isinstance(values["a"], Identifier)
    assert (values["c"], values["d"], values["e"]) == (1.5, True, 7)


def test_positions_are_one_based_lines_and_columns():
    message = parse_yaml("model:\n  ssd:\n    num_classes: 3\n", "p.yaml")
    field = message.first("model").first("ssd").get("num_classes")[0]
    assert (field.line, field.column) == (3, 18)


@pytest.mark.parametrize(
    "text, match",
    [
        ("a: [[1, 2]]\n", r"p.yaml:1:5: a list inside a list"),
        ("a:\n", r"p.yaml:1:3: a field needs a value"),
        ("- 1\n- 2\n", r"p.yaml:1:1: a YAML config is a mapping"),
        ("a: {b: 1\n", r"p.yaml:2:1: invalid YAML"),
        ("1: x\n", r"p.yaml:1:1: field names are plain words"),
    ],
)
def test_errors_name_file_line_and_column(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_yaml(text, "p.yaml")


def test_empty_document_is_an_empty_config():
    assert parse_yaml("# nothing\n").fields == []
    assert to_yaml(Message()) == "{}\n"


FASTER_RCNN_YAML = """\
model:
  faster_rcnn:
    num_classes: 2
    image_resizer: {fixed_shape_resizer: {height: 64, width: 64}}
    feature_extractor: {type: faster_rcnn_mobilenet_v2}
    first_stage_anchor_generator:
      grid_anchor_generator: {scales: [0.5, 1.0], aspect_ratios: [1.0]}
    initial_crop_size: 6
    maxpool_kernel_size: 2
    maxpool_stride: 2
    second_stage_box_predictor: {mask_rcnn_box_predictor: {}}
    second_stage_post_processing:
      batch_non_max_suppression: {max_total_detections: 10}
      score_converter: SOFTMAX
"""


def test_a_plain_yaml_word_is_a_string_for_string_fields_and_a_name_for_enums():
    model = build_model(parse_yaml(FASTER_RCNN_YAML, "p.yaml").first("model"))
    assert type(model.feature_extractor).registered_name == "faster_rcnn_mobilenet_v2"
    fields = read(
        Node(parse_yaml("type: ssd_mobilenet_v2\nconverter: SIGMOID\n"), "x"),
        {"type": String(), "converter": Enum(("SIGMOID", "SOFTMAX"))},
    )
    assert type(fields["type"]) is str and fields["type"] == "ssd_mobilenet_v2"
    assert isinstance(fields["converter"], Identifier) and fields["converter"] == "SIGMOID"


@pytest.mark.parametrize(
    "root, match",
    [
        # protobuf text format: a bare word is an enum name only, as protobuf reads it.
        (parse("type: ssd_mobilenet_v2", "p.config"),
         r"p.config:1:1: 'x.type' expects a quoted string, got the name ssd_mobilenet_v2"),
        # YAML: a quoted string is no enum name.
        (parse_yaml('converter: "SIGMOID"\n', "p.yaml"),
         r"p.yaml:1:12: 'x.converter' expects one of SIGMOID, SOFTMAX, got the string 'SIGMOID'"),
    ],
)
def test_bare_text_format_words_and_quoted_yaml_strings_keep_their_checks(root, match):
    schema = {"type": String(), "converter": Enum(("SIGMOID", "SOFTMAX"))}
    with pytest.raises(ConfigError, match=match):
        read(Node(root, "x"), schema)
