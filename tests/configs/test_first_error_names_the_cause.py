"""A config that needs what kdet does not have says so first.

Every TF OD API sample config now builds in kdet (`tests/configs/test_sample_configs.py`); what
kdet lacks is what no sample config uses (DETR, CenterNet's DensePose, tracking and segmentation
tasks, SSD mask heads, a few feature extractors). A config that asks for one: `load_pipeline`
names that, at the field that asks for it, before any other complaint (here a bogus
`train_config` field). The checks run before any model is built, so these tests only parse.
"""

import pathlib
import re

import pytest

from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs.model_builder import build_model_from_text
from kdet.configs.model_builder import check_architecture
from kdet.configs.text_format import parse
from kdet.configs.text_format import parse_file
from kdet.configs.yaml_config import to_yaml
from kdet.feature_extractors import registry

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "data" / "tfod_configs"


def _position(path, pattern):
    """`line:column` of the first match of `pattern` (the field name) in the file."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = re.search(pattern, line)
        if match:
            return f"{number}:{match.start() + 1}"
    raise AssertionError(f"{pattern!r} not in {path}")


# config text → (regex of the field's line, its dotted path, texts the error must hold)
CASES = {
    "model {\n  detr {\n  }\n}\ntrain_config { bogus_field: 1 }\n": (
        r"detr \{", "model.detr", ["DETR is not in kdet (not planned)"],
    ),
    ("model {\n  center_net {\n    num_classes: 1\n    densepose_estimation_task {\n    }\n"
     "  }\n}\ntrain_config { bogus_field: 1 }\n"): (
        r"densepose_estimation_task \{", "model.center_net.densepose_estimation_task",
        ["CenterNet's DensePose task is not in kdet (not planned)"],
    ),
}

# A config whose SSD feature extractor kdet lacks (PNASNet), with a field kdet refuses after it.
LACKS_AN_EXTRACTOR = """model {
  ssd {
    num_classes: 1
    feature_extractor {
      type: 'ssd_pnasnet'
    }
  }
}
train_config { bogus_field: 1 }
"""


@pytest.mark.parametrize("config", sorted(CASES))
def test_load_pipeline_names_the_missing_architecture_first(config, tmp_path):
    path = tmp_path / "pipeline.config"
    path.write_text(config)
    pattern, field, texts = CASES[config]
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{_position(path, pattern)}: '{field}'")
    for text in texts:
        assert text in message
    assert "\n" not in message


def test_build_model_names_the_missing_architecture_too():
    text = "model { center_net { num_classes: 1 track_estimation_task { } } }"
    with pytest.raises(ConfigError, match=r"track_estimation_task': CenterNet's tracking task is "
                                          r"not in kdet \(not planned\)"):
        build_model_from_text(text, source="inline.config")


def test_a_missing_feature_extractor_is_named_first(tmp_path):
    path = tmp_path / "pnasnet.config"
    path.write_text(LACKS_AN_EXTRACTOR)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{_position(path, 'type: ')}: "
                              "'model.ssd.feature_extractor.type'")
    assert "feature extractor 'ssd_pnasnet' (PNASNet) is not in kdet yet (issue 17)" in message
    assert "\n" not in message


def test_yaml_configs_are_checked_first_too(tmp_path):
    yaml_path = tmp_path / "pnasnet.yaml"
    yaml_path.write_text(to_yaml(parse(LACKS_AN_EXTRACTOR, "inline.config")))
    with pytest.raises(ConfigError) as caught:
        load_pipeline(yaml_path)
    line = _position(yaml_path, r"type: ").split(":")[0]
    assert str(caught.value).startswith(f"{yaml_path}:{line}:")
    assert "feature extractor 'ssd_pnasnet' (PNASNet) is not in" in str(caught.value)


def test_a_config_kdet_builds_passes_the_check():
    # mask_rcnn_box_predictor is also the box-only second stage: no masks asked for.
    check_architecture(parse_file(CONFIGS / "faster_rcnn_resnet50_pets.config"))
    # The two-stage variants and DeepMAC build too.
    for name in ("mask_rcnn_resnet50_atrous_coco.config", "rfcn_resnet101_coco.config",
                 "context_rcnn_resnet101_snapshot_serengeti.config"):
        check_architecture(parse_file(CONFIGS / name))
    for path in (CONFIGS.parent / "tfod_reference" / "deepmac_configs").glob("*.config"):
        check_architecture(parse_file(path))


def test_an_extractor_registered_under_a_tf_od_api_name_is_found(monkeypatch):
    config = parse(LACKS_AN_EXTRACTOR, "inline.config")
    with pytest.raises(ConfigError, match="'ssd_pnasnet' .PNASNet. is not in kdet yet"):
        check_architecture(config)
    # A user's own extractor registered as ssd_pnasnet (here kdet's MobileNetV2).
    monkeypatch.setitem(registry._FEATURE_EXTRACTORS, "ssd_pnasnet",
                        registry.get_feature_extractor_class("ssd_mobilenet_v2"))
    check_architecture(config)


def _model(text):
    return parse(f"model {{ {text} }} train_config {{ bogus_field: 1 }}", "inline.config")


@pytest.mark.parametrize(
    "text, field, cause",
    [
        ("ssd { mask_head_config { mask_height: 15 } }",
         "model.ssd.mask_head_config' configures instance masks (an SSD mask head), which are "
         "not in kdet; kdet's masks are Mask R-CNN's and DeepMAC's", None),
        ("detr { }", "model.detr': DETR is not in kdet (not planned)", None),
        ("center_net { mask_estimation_task { } }",
         "model.center_net.mask_estimation_task': CenterNet's segmentation mask task is not in "
         "kdet (not planned)", None),
        # Context R-CNN builds: only the extractor is missing.
        ("faster_rcnn { feature_extractor { type: 'faster_rcnn_pnas' } context_config { } }",
         "model.faster_rcnn.feature_extractor.type': feature extractor 'faster_rcnn_pnas' "
         "(PNASNet)", None),
    ],
)
def test_each_kind_of_missing_model_is_named(text, field, cause):
    with pytest.raises(ConfigError) as caught:
        check_architecture(_model(text))
    message = str(caught.value)
    assert re.match(r"inline\.config:1:\d+: '", message) and field in message
    if cause:
        assert cause in message


@pytest.mark.parametrize(
    "text",
    [
        "faster_rcnn { second_stage_box_predictor { mask_rcnn_box_predictor { "
        "predict_instance_masks: false } } number_of_stages: 2 }",
        "ssd { feature_extractor { type: 'ssd_mobilenet_v2_keras' } }",
        "ssd { feature_extractor { type: 'my_own_unregistered_extractor' } }",
    ],
)
def test_what_kdet_has_or_does_not_know_is_left_to_the_field_checks(text):
    check_architecture(_model(text))
