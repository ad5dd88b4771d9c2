import math
import re

import pytest

from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Field
from kdet.configs.text_format import Identifier
from kdet.configs.text_format import Message
from kdet.configs.text_format import parse
from kdet.configs.text_format import parse_file

# Written for these tests in the style of a TF OD API SSD MobileNetV2 pipeline.config: comments,
# one-line and multi-line blocks, repeated fields and the placeholder paths such files ship with.
SSD_PIPELINE = """\
# SSD with a MobileNetV2 feature extractor, 320x320 input, 37 classes.
model {
  ssd {
    num_classes: 37
    image_resizer {
      fixed_shape_resizer {
        height: 320
        width: 320
      }
    }
    feature_extractor {
      type: "ssd_mobilenet_v2"
      depth_multiplier: 1.0
      min_depth: 16
      conv_hyperparams {
        regularizer { l2_regularizer { weight: 4e-05 } }
        initializer { truncated_normal_initializer { stddev: 0.03 mean: 0.0 } }
        activation: RELU_6
        batch_norm { decay: 0.9997 center: true scale: true epsilon: 0.001 train: true }
      }
      override_base_feature_extractor_hyperparams: false
    }
    box_coder {
      faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 }
    }
    matcher {
      argmax_matcher {
        matched_threshold: 0.5
        unmatched_threshold: 0.5
        ignore_thresholds: false
        negatives_lower_than_unmatched: true
        force_match_for_each_row: true
      }
    }
    similarity_calculator { iou_similarity { } }
    anchor_generator {
      ssd_anchor_generator {
        num_layers: 6
        min_scale: 0.2
        max_scale: 0.95
        aspect_ratios: 1.0
        aspect_ratios: 2.0
        aspect_ratios: 0.5
        aspect_ratios: 3.0
        aspect_ratios: 0.3333
      }
    }
    box_predictor {
      convolutional_box_predictor {
        min_depth: 0
        max_depth: 0
        num_layers_before_predictor: 0
        use_dropout: false
        dropout_keep_probability: 0.8
        kernel_size: 3
        box_code_size: 4
        apply_sigmoid_to_scores: false
        conv_hyperparams {
          activation: RELU_6,
          regularizer { l2_regularizer { weight: 4e-05 } }
          initializer { truncated_normal_initializer { stddev: 0.03 } }
        }
      }
    }
    loss {
      classification_loss { weighted_sigmoid { } }
      localization_loss { weighted_smooth_l1 { } }
      hard_example_miner {
        num_hard_examples: 3000
        iou_threshold: 0.99
        loss_type: CLASSIFICATION
        max_negatives_per_positive: 3
        min_negatives_per_image: 3
      }
      classification_weight: 1.0
      localization_weight: 1.0
    }
    normalize_loss_by_num_matches: true
    post_processing {
      batch_non_max_suppression {
        score_threshold: 1e-8
        iou_threshold: 0.6
        max_detections_per_class: 100
        max_total_detections: 100
      }
      score_converter: SIGMOID
    }
  }
}

train_config: {
  batch_size: 32
  optimizer {
    rms_prop_optimizer: {
      learning_rate: {
        exponential_decay_learning_rate {
          initial_learning_rate: 0.004
          decay_steps: 800720
          decay_factor: 0.95
        }
      }
      momentum_optimizer_value: 0.9
      decay: 0.9
      epsilon: 1.0
    }
  }
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/model.ckpt"
  fine_tune_checkpoint_type: "detection"
  num_steps: 200000
  data_augmentation_options {
    random_horizontal_flip {
    }
  }
  data_augmentation_options {
    ssd_random_crop {
    }
  }
}

train_input_reader: {
  tf_record_input_reader {
    input_path: "PATH_TO_BE_CONFIGURED/pets_train.record-?????-of-00010"
  }
  label_map_path: "PATH_TO_BE_CONFIGURED/pet_label_map.pbtxt"
}

eval_config: {
  metrics_set: "coco_detection_metrics"
  num_examples: 1101
  use_moving_averages: false
}

eval_input_reader: {
  tf_record_input_reader {
    input_path: "PATH_TO_BE_CONFIGURED/pets_val.record-?????-of-00010"
  }
  label_map_path: "PATH_TO_BE_CONFIGURED/pet_label_map.pbtxt"
  shuffle: false
  num_readers: 1
}
"""


def value(text, name="x"):
    """Returns the value of the only field of the one-field text `text`."""
    (field,) = parse(text).fields
    assert field.name == name
    return field.value


def path(message, *names):
    """Returns the value reached by following the first field of each name in `names`."""
    for name in names:
        message = message.first(name)
    return message


def raises_at(prefix, problem):
    """Returns a `pytest.raises` that wants a ConfigError starting `prefix` and naming `problem`."""
    return pytest.raises(ConfigError, match="^" + re.escape(prefix) + " .*" + re.escape(problem))


# Grammar.


def test_empty_and_comment_only_texts_give_an_empty_root():
    for text in ("", "  \n\t\n", "# only a comment\n# and another"):
        root = parse(text, "empty.config")
        assert root == Message([], 1, 1, "empty.config")


def test_comments_end_at_the_line_end_and_not_inside_strings():
    root = parse('a: 1  # a: 2\nb: "x # y"  # "z"\n# c: 3\n')
    assert [(f.name, f.value) for f in root.fields] == [("a", 1), ("b", "x # y")]


def test_whitespace_and_newlines_anywhere():
    root = parse("a\n:\n  1\nb\n\n{\n c :2 }\r\n")
    assert root.first("a") == 1
    assert root.first("b").first("c") == 2


@pytest.mark.parametrize(
    "text",
    ["m { a: 1 }", "m: { a: 1 }", "m < a: 1 >", "m: < a: 1 >", "m {a:1}", "m:{a:1};"],
)
def test_message_forms(text):
    message = value(text, "m")
    assert isinstance(message, Message)
    assert message.column == re.search("[{<]", text).start() + 1
    assert message.fields == [Field("a", 1, 1, text.index("a") + 1)]


def test_angle_brackets_and_braces_nest_each_with_their_own_closer():
    root = parse("a < b { c < d: 1 > } >")
    assert path(root, "a", "b", "c", "d") == 1


def test_optional_comma_or_semicolon_after_fields():
    root = parse("a: 1, b: 2; c { d: 3; }, e: 4")
    assert [(f.name, f.value) for f in root.fields][:2] == [("a", 1), ("b", 2)]
    assert root.first("c").first("d") == 3
    assert root.first("e") == 4


def test_scalar_list_gives_one_field_per_element():
    root = parse("x: [1, 2.5, 'three', RGB]\ny: []")
    assert [f.value for f in root.get("x")] == [1, 2.5, "three", "RGB"]
    assert [(f.line, f.column) for f in root.get("x")] == [(1, 5), (1, 8), (1, 13), (1, 22)]
    assert root.get("y") == []


def test_message_list_with_and_without_colon():
    for text in ("x: [{a: 1}, <a: 2>]", "x [{a: 1}, <a: 2>]"):
        fields = parse(text).get("x")
        assert [f.value.first("a") for f in fields] == [1, 2]
        assert all(f.column == f.value.column for f in fields)


def test_extension_names_keep_their_bracket_text():
    root = parse("[my.ext] { a: 1 }\n[ type.googleapis.com/pkg.Msg ]: 5")
    assert root.names() == ["[my.ext]", "[type.googleapis.com/pkg.Msg]"]
    assert root.first("[my.ext]").first("a") == 1
    assert root.first("[type.googleapis.com/pkg.Msg]") == 5


# Typed values.


@pytest.mark.parametrize(
    "text, expected",
    [("0", 0), ("24", 24), ("-7", -7), ("0x1F", 31), ("0X1f", 31), ("-0x10", -16), ("017", 15)],
)
def test_integers_stay_python_ints(text, expected):
    result = value(f"x: {text}")
    assert type(result) is int and result == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1.", 1.0),
        (".5", 0.5),
        ("-0.5", -0.5),
        ("1e-8", 1e-8),
        ("1.0E+3", 1000.0),
        ("4e-05", 4e-05),
        ("1.5f", 1.5),
        ("2F", 2.0),
        ("- 3.25", -3.25),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("Infinity", math.inf),
        ("-INF", -math.inf),
    ],
)
def test_floats(text, expected):
    result = value(f"x: {text}")
    assert type(result) is float and result == expected


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan"])
def test_nan(text):
    assert math.isnan(value(f"x: {text}"))


@pytest.mark.parametrize(
    "text, expected",
    [("true", True), ("True", True), ("t", True), ("false", False), ("False", False), ("f", False)],
)
def test_booleans(text, expected):
    assert value(f"x: {text}") is expected


def test_identifiers_are_enum_values():
    result = value("x: SMOOTH_L1")
    assert type(result) is Identifier and result == "SMOOTH_L1"
    assert repr(result) == "Identifier('SMOOTH_L1')"
    assert type(value("x: TRUE")) is Identifier  # only the six protobuf spellings are bools


@pytest.mark.parametrize(
    "text, expected",
    [
        ('"abc"', "abc"),
        ("'abc'", "abc"),
        ("''", ""),
        (r'"a\nb\tc\rd"', "a\nb\tc\rd"),
        (r'"back\\slash"', "back\\slash"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'it\'s'", "it's"),
        ("\"it's\"", "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        (r'"\101\x42\0"', "AB\0"),
        (r'"caf\303\251"', "café"),
        (r'"\u00e9\U0001F600"', "é\U0001f600"),
        ('"abc" "def"', "abcdef"),
        ("'abc'\n  \"def\" # comment\n 'g'", "abcdefg"),
        ('"é ünïcode"', "é ünïcode"),
    ],
)
def test_strings(text, expected):
    result = value(f"x: {text}")
    assert type(result) is str and result == expected


# Line and column numbers, repetition and the Message methods.


def test_line_and_column_numbers():
    root = parse(
        "# header\n"
        "train_config {\n"
        "  batch_size: 24\n"
        "  optimizer <\n"
        "    momentum: 0.9 >\n"
        "}\n"
        "  label: 'x'\n"
    )
    train = root.get("train_config")[0]
    assert (train.line, train.column) == (2, 1)
    assert (train.value.line, train.value.column) == (2, 14)
    assert [(f.name, f.line, f.column) for f in train.value.fields] == [
        ("batch_size", 3, 3),
        ("optimizer", 4, 3),
    ]
    optimizer = train.value.first("optimizer")
    assert (optimizer.line, optimizer.column) == (4, 13)
    assert (optimizer.fields[0].line, optimizer.fields[0].column) == (5, 5)
    assert (root.fields[1].line, root.fields[1].column) == (7, 3)
    assert (root.line, root.column) == (1, 1)


def test_repeated_fields_keep_file_order_among_other_fields():
    root = parse("a: 1 b: 2 a: 3 c {} a: 4 b: 5")
    assert [f.value for f in root.get("a")] == [1, 3, 4]
    assert [f.name for f in root.fields] == ["a", "b", "a", "c", "a", "b"]
    assert root.names() == ["a", "b", "c"]


def test_message_get_first_names():
    root = parse("m { a: 1 a: 2 }")
    message = root.first("m")
    assert message.get("a") == [Field("a", 1, 1, 5), Field("a", 2, 1, 10)]
    assert message.get("missing") == []
    assert message.first("a") == 1
    assert message.first("missing") is None
    assert message.first("missing", 0.5) == 0.5
    assert message.names() == ["a"]
    assert Message().names() == []


def test_nested_messages_carry_the_source():
    root = parse("a { b { c: 1 } }", source="nested.config")
    assert root.source == path(root, "a").source == path(root, "a", "b").source == "nested.config"


def test_fields_are_frozen():
    field = parse("x: 1").fields[0]
    with pytest.raises(AttributeError):
        field.value = 2


# Errors.


@pytest.mark.parametrize(
    "text, prefix, problem",
    [
        ('x: 1\ny: "abc\nz: 2', "p.config:2:4:", "unterminated string"),
        ("x: 'abc", "p.config:1:4:", "unterminated string"),
        ('x: "abc\'', "p.config:1:4:", "unterminated string"),
        ("x: 1\n}", "p.config:2:1:", "unmatched '}'"),
        ("a { b: 1 }\n  >", "p.config:2:3:", "unmatched '>'"),
        ("a {\n  b: 1\n>", "p.config:3:1:", "'>' does not close the '{' opened at 1:3"),
        ("a <\n  b: 1\n}", "p.config:3:1:", "'}' does not close the '<' opened at 1:3"),
        ("a {\n  b {\n    c: 1\n  }\n", "p.config:1:3:", "'{' is never closed"),
        ("a {\n  b <\n    c: 1\n", "p.config:2:5:", "'<' is never closed"),
        ("x: [1, 2\n", "p.config:1:4:", "'[' is never closed"),
        ("x: [1, 2,", "p.config:1:4:", "'[' is never closed"),
        ("a {\n  x: @\n}", "p.config:2:6:", "unexpected character '@'"),
        ("x: +1", "p.config:1:4:", "unexpected character '+'"),
        ("a {\n  batch_size: }", "p.config:2:15:", "expected a value after ':' for field"),
        ("batch_size:", "p.config:1:12:", "found end of file"),
        ("x: [1, ]", "p.config:1:8:", "expected a value in the list of field 'x', found ']'"),
        ("x: [1 2]", "p.config:1:7:", "expected ',' or ']' in the list of field 'x', found '2'"),
        ("x [1, 2]", "p.config:1:4:", "a list of scalars needs a ':'"),
        ("a {\n  batch_size 24\n}", "p.config:2:14:", "(scalar values need a ':')"),
        ("label 'x'", "p.config:1:7:", "expected ':' or '{' after field name 'label'"),
        ("batch_size }", "p.config:1:12:", "found '}'"),
        ("x: -", "p.config:1:5:", "expected a number after '-', found end of file"),
        ("x: -RGB", "p.config:1:5:", "expected a number after '-', found 'RGB'"),
        ("1: 2", "p.config:1:1:", "expected a field name, found '1'"),
        ("a: 1 : 2", "p.config:1:6:", "expected a field name, found ':'"),
        ("[ext: 1", "p.config:1:5:", "expected an extension name and ']', found ':'"),
        ("x: 12abc", "p.config:1:4:", "invalid number '12abc'"),
        ("x: 1.2.3", "p.config:1:4:", "invalid number '1.2.3'"),
        ("x: 0x", "p.config:1:4:", "invalid number '0x'"),
        ("x: 09", "p.config:1:4:", "invalid number '09'"),
        (r'x: "ab\qc"', "p.config:1:7:", r"invalid escape '\q' in string"),
        (r'x: "\777"', "p.config:1:5:", r"octal escape '\777' is above '\377'"),
        (r'x: "\UFFFFFFFF"', "p.config:1:5:", r"invalid unicode escape '\UFFFFFFFF'"),
        (r'x: "a\uD800"', "p.config:1:6:", r"invalid unicode escape '\uD800'"),
        (r'x:  "\377"', "p.config:1:5:", "string escapes do not form valid UTF-8"),
    ],
)
def test_errors_name_source_line_and_column(text, prefix, problem):
    with raises_at(prefix, problem):
        parse(text, source="p.config")


def test_error_message_format_from_the_brief():
    with pytest.raises(ConfigError) as error:
        parse("train_config {\n  batch_size }", source="pipeline.config")
    assert str(error.value) == (
        "pipeline.config:2:14: expected ':' or '{' after field name 'batch_size', found '}'"
    )
    assert isinstance(error.value, ValueError)


def test_default_source_and_config_error_at():
    with raises_at("<string>:1:1:", "unmatched '}'"):
        parse("}")
    assert str(ConfigError.at("a.config", 3, 7, "bad")) == "a.config:3:7: bad"


def test_parse_file(tmp_path):
    config = tmp_path / "pipeline.config"
    config.write_text("\ufeffmodel { ssd { num_classes: 3 } }\n", encoding="utf-8")
    root = parse_file(config)
    assert path(root, "model", "ssd", "num_classes") == 3
    assert root.source == str(config)


def test_parse_file_errors(tmp_path):
    missing = tmp_path / "missing.config"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(missing))}: no such file$"):
        parse_file(missing)
    broken = tmp_path / "broken.config"
    broken.write_text("model {\n  ssd {\n", encoding="utf-8")
    with raises_at(f"{broken}:2:7:", "'{' is never closed"):
        parse_file(broken)
    latin1 = tmp_path / "latin1.config"
    latin1.write_bytes(b"name: 'caf\xe9'")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(latin1))}: not UTF-8 text"):
        parse_file(latin1)


# A realistic pipeline.config.


def test_ssd_pipeline_config():
    root = parse(SSD_PIPELINE, source="ssd_mobilenet_v2.config")
    assert root.names() == [
        "model",
        "train_config",
        "train_input_reader",
        "eval_config",
        "eval_input_reader",
    ]
    ssd = path(root, "model", "ssd")
    assert ssd.first("num_classes") == 37
    assert path(ssd, "image_resizer", "fixed_shape_resizer").names() == ["height", "width"]
    assert path(ssd, "image_resizer", "fixed_shape_resizer", "height") == 320

    extractor = ssd.first("feature_extractor")
    assert extractor.first("type") == "ssd_mobilenet_v2"
    assert extractor.first("depth_multiplier") == 1.0
    assert path(extractor, "conv_hyperparams", "activation") == Identifier("RELU_6")
    assert path(extractor, "conv_hyperparams", "regularizer", "l2_regularizer", "weight") == 4e-05
    assert path(extractor, "conv_hyperparams", "batch_norm", "scale") is True
    assert extractor.first("override_base_feature_extractor_hyperparams") is False

    anchors = path(ssd, "anchor_generator", "ssd_anchor_generator")
    ratios = anchors.get("aspect_ratios")
    assert [f.value for f in ratios] == [1.0, 2.0, 0.5, 3.0, 0.3333]
    assert [f.line for f in ratios] == list(range(41, 46))
    assert all(f.column == 9 for f in ratios)

    predictor = path(ssd, "box_predictor", "convolutional_box_predictor")
    assert predictor.first("kernel_size") == 3
    assert predictor.first("use_dropout") is False
    assert path(predictor, "conv_hyperparams").names() == [
        "activation",
        "regularizer",
        "initializer",
    ]

    loss = ssd.first("loss")
    assert path(loss, "classification_loss").names() == ["weighted_sigmoid"]
    assert path(loss, "localization_loss", "weighted_smooth_l1").fields == []
    miner = loss.first("hard_example_miner")
    assert miner.first("num_hard_examples") == 3000
    assert miner.first("loss_type") == "CLASSIFICATION"
    assert isinstance(miner.first("loss_type"), Identifier)

    post = ssd.first("post_processing")
    assert path(post, "batch_non_max_suppression", "score_threshold") == 1e-8
    assert path(post, "batch_non_max_suppression", "max_total_detections") == 100
    assert post.first("score_converter") == "SIGMOID"

    train = root.first("train_config")
    assert train.first("batch_size") == 32
    schedule = path(train, "optimizer", "rms_prop_optimizer", "learning_rate")
    decay = schedule.first("exponential_decay_learning_rate")
    assert (decay.first("initial_learning_rate"), decay.first("decay_steps")) == (0.004, 800720)
    augmentations = train.get("data_augmentation_options")
    assert [f.value.names() for f in augmentations] == [
        ["random_horizontal_flip"],
        ["ssd_random_crop"],
    ]
    assert [f.line for f in augmentations] == [110, 114]
    assert train.first("fine_tune_checkpoint") == "PATH_TO_BE_CONFIGURED/model.ckpt"

    reader = root.first("train_input_reader")
    assert path(reader, "tf_record_input_reader", "input_path") == (
        "PATH_TO_BE_CONFIGURED/pets_train.record-?????-of-00010"
    )
    assert reader.first("label_map_path") == "PATH_TO_BE_CONFIGURED/pet_label_map.pbtxt"

    evaluation = root.first("eval_config")
    assert evaluation.get("metrics_set")[0].value == "coco_detection_metrics"
    assert evaluation.first("num_examples") == 1101
    assert root.first("eval_input_reader").first("shuffle") is False
