"""TF OD API `fine_tune_checkpoint_type`s: which of a kdet detector's weights each restores."""

import keras
import numpy as np
import pytest

import kdet
import tiny_ssd_extractor
from kdet.configs.field_reader import Node
from kdet.configs.text_format import parse
from kdet.configs.train_builder import build_training
from kdet.training import variable_names
from kdet.training.variable_selection import copy_matching_weights
from kdet.training.variable_selection import fine_tune_prefixes
from kdet.training.variable_selection import weights_kept

IMAGE_SIZE = 64


def _ssd(num_classes=2):
    model = tiny_ssd_extractor.tiny_ssd(num_classes=num_classes, image_size=IMAGE_SIZE)
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return model


def _values(model):
    return {name: weight.numpy().copy() for name, weight in variable_names(model).items()}


def _equal(first, second, names):
    return all(np.array_equal(first[name], second[name]) for name in names)


@pytest.mark.parametrize(
    "checkpoint_type, load_all, prefixes",
    [("classification", False, ("feature_extractor/",)),
     ("detection", False, ("feature_extractor/",)),
     ("detection", True, ("",)),
     ("fine_tune", False, ("feature_extractor/",)),
     ("fine_tune", True, ("feature_extractor/",)),
     ("full", False, ("",))],
)
def test_prefixes_of_each_type(checkpoint_type, load_all, prefixes):
    assert fine_tune_prefixes(checkpoint_type, load_all) == prefixes


def test_unknown_type_is_an_error_listing_the_known_ones():
    with pytest.raises(ValueError, match="'segmentation' is not one of 'classification', "
                                         "'detection', 'fine_tune', 'full'"):
        fine_tune_prefixes("segmentation")


def test_detection_restores_the_feature_extractor_and_full_everything():
    source, target = _ssd(), _ssd()
    before, pretrained = _values(target), _values(source)
    extractor = [name for name in before if name.startswith("feature_extractor/")]
    heads = [name for name in before if name.startswith("box_predictor/")]
    assert extractor and heads and not _equal(before, pretrained, extractor + heads)

    result = copy_matching_weights(source, target, fine_tune_prefixes("detection"))
    after = _values(target)
    assert sorted(result["restored"]) == sorted(extractor)
    assert _equal(after, pretrained, extractor)
    assert _equal(after, before, heads)  # the box predictor keeps its initial values

    copy_matching_weights(source, target, fine_tune_prefixes("full"), require_all=True)
    assert _equal(_values(target), pretrained, extractor + heads)


def test_full_needs_every_weight_and_copies_nothing_otherwise():
    source, target = _ssd(num_classes=2), _ssd(num_classes=5)
    before = _values(target)
    with pytest.raises(ValueError, match=r"weights of SSD have no weight of the same name and "
                                         r"shape in SSD: box_predictor/.*ClassPredictor"):
        copy_matching_weights(source, target, fine_tune_prefixes("full"), require_all=True)
    assert _equal(_values(target), before, before)
    # "detection" with another num_classes is fine: the class heads are not restored anyway.
    result = copy_matching_weights(source, target, fine_tune_prefixes("detection"))
    assert result["restored"] and not result["shape_differs"]


def test_weights_kept_restores_a_scope_out_of_a_whole_checkpoint_file(tmp_path):
    source, target = _ssd(), _ssd()
    path = tmp_path / "ckpt-1.weights.h5"
    source.save_weights(path)
    before, pretrained = _values(target), _values(source)
    with weights_kept(target, fine_tune_prefixes("fine_tune")) as kept:
        target.load_weights(path)
    after = _values(target)
    assert kept and all(name.startswith("box_predictor/") for name in kept)
    assert _equal(after, before, kept)
    assert _equal(after, pretrained, [name for name in after if name not in kept])


def test_faster_rcnn_detection_scope_is_both_feature_stages_not_the_heads():
    from tiny_two_stage_extractor import ConfigTestTinyTwoStageExtractor

    def build():
        model = kdet.FasterRCNN(
            num_classes=2,
            feature_extractor=ConfigTestTinyTwoStageExtractor(first_stage_features_stride=8),
            image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
            first_stage_anchor_generator=kdet.layers.GridAnchorGenerator(
                scales=(1.0,), aspect_ratios=(1.0,), base_anchor_size=(32, 32),
                anchor_stride=(8, 8),
            ),
            first_stage_box_predictor_depth=8,
            first_stage_max_proposals=8,
            initial_crop_size=4,
        )
        model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
        return model

    source, target = build(), build()
    result = copy_matching_weights(source, target, fine_tune_prefixes("detection"))
    restored = set(result["restored"])
    # The proposal features (the body) and the box classifier features (the head).
    assert {"feature_extractor/conv2d/kernel", "feature_extractor/head/kernel"} <= restored
    assert not {name for name in restored if not name.startswith("feature_extractor/")}
    assert "region_proposal_network/rpn_head/RPNConv/kernel" in result["missing"]


def _settings(fields):
    text = ("train_config { optimizer { momentum_optimizer { learning_rate {"
            " constant_learning_rate {} } } }\n" + fields + " }")
    root = parse(text, "pipeline.config")
    return build_training(Node(root.first("train_config"), "train_config"))[1]


@pytest.mark.parametrize("checkpoint_type", ["fine_tune", "full", "detection",
                                             "classification"])
def test_train_config_accepts_every_tf_od_api_type(checkpoint_type):
    settings = _settings(f'fine_tune_checkpoint: "x" fine_tune_checkpoint_type: '
                         f'"{checkpoint_type}"')
    assert settings.fine_tune_checkpoint_type == checkpoint_type
    assert settings.load_all_detection_checkpoint_vars is False


def test_train_config_reads_load_all_detection_checkpoint_vars():
    settings = _settings('fine_tune_checkpoint: "x" from_detection_checkpoint: true\n'
                         "load_all_detection_checkpoint_vars: true")
    assert settings.fine_tune_checkpoint_type == "detection"
    assert settings.load_all_detection_checkpoint_vars is True
    assert fine_tune_prefixes(settings.fine_tune_checkpoint_type,
                              settings.load_all_detection_checkpoint_vars) == ("",)


def test_keras_round_trip_of_a_restored_model_is_unaffected(tmp_path):
    # The restore only assigns values: the model still saves and loads as before.
    source, target = _ssd(), _ssd()
    copy_matching_weights(source, target, fine_tune_prefixes("detection"))
    path = tmp_path / "model.keras"
    target.save(path)
    loaded = keras.models.load_model(path)
    assert _equal(_values(loaded), _values(target), _values(target))


def test_load_all_optimizer_checkpoint_vars_false_is_what_kdet_does_true_is_an_error():
    # ssdlite_mobilenet_v2_coco_quantize.config sets it to False.
    settings = _settings('fine_tune_checkpoint: "x" fine_tune_checkpoint_type: "detection"\n'
                         "load_all_optimizer_checkpoint_vars: False\n"
                         "load_all_moving_average_checkpoint_vars: False\n"
                         "include_global_step: False")
    assert settings.fine_tune_checkpoint_type == "detection"
    from kdet.configs.text_format import ConfigError

    with pytest.raises(ConfigError, match=r"pipeline.config:3:1: 'train_config."
                                          r"load_all_optimizer_checkpoint_vars' is true, but "
                                          r"kdet's fine-tune restore loads no optimizer state"):
        _settings("fine_tune_checkpoint: \"x\"\nload_all_optimizer_checkpoint_vars: true")
    with pytest.raises(ConfigError, match=r"'train_config.include_global_step' is true, but "
                                          r"kdet's fine-tune restore loads no step count"):
        _settings("include_global_step: true")


def _checkpoint_and_config(tmp_path, checkpoint_type, num_classes=None):
    """A kdet checkpoint of the tiny pipeline's model, and a config fine-tuning from it."""
    import tiny_pipeline
    from kdet.utils.verified_files import write_verified

    source = kdet.configs.load_pipeline(tiny_pipeline.write_pipeline(tmp_path, num_steps=1))
    source.model.build((None, tiny_pipeline.IMAGE_SIZE, tiny_pipeline.IMAGE_SIZE, 3))
    (tmp_path / "a").mkdir()
    write_verified(tmp_path / "a" / "ckpt-1.weights.h5", source.model.save_weights)
    (tmp_path / "b").mkdir()
    config = tiny_pipeline.write_pipeline(
        tmp_path / "b", num_steps=1,
        train_config_extra=f'fine_tune_checkpoint: "{tmp_path / "a"}" '
        f'fine_tune_checkpoint_type: "{checkpoint_type}"',
    )
    if num_classes is not None:
        config.write_text(config.read_text().replace(
            f"num_classes: {len(tiny_pipeline.LABEL_MAP)}", f"num_classes: {num_classes}"))
    return source.model, kdet.configs.load_pipeline(config)


def test_pipeline_fine_tune_type_restores_the_feature_extractor_only(tmp_path):
    source, pipeline = _checkpoint_and_config(tmp_path, "fine_tune")
    pipeline.model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))  # the tiny pipeline's size
    before = _values(pipeline.model)
    restore = kdet.configs.restore_fine_tune_checkpoint(pipeline)
    after, pretrained = _values(pipeline.model), _values(source)
    assert restore.restored and all(n.startswith("feature_extractor/") for n in restore.restored)
    assert restore.outside_type and all(n.startswith("box_predictor/")
                                        for n in restore.outside_type)
    assert _equal(after, pretrained, restore.restored)
    assert _equal(after, before, restore.outside_type)
    assert "kept their initial values (a 'fine_tune' restore leaves them)" in str(restore)


def test_pipeline_full_type_needs_every_weight(tmp_path):
    source, pipeline = _checkpoint_and_config(tmp_path, "full")
    restore = kdet.configs.restore_fine_tune_checkpoint(pipeline)
    assert not restore.shape_differs and not restore.missing and not restore.outside_type
    assert _equal(_values(pipeline.model), _values(source), _values(source))

    (tmp_path / "x").mkdir()
    _, other_classes = _checkpoint_and_config(tmp_path / "x", "full", num_classes=5)
    with pytest.raises(kdet.configs.ConfigError, match=r"fine_tune_checkpoint_type 'full' "
                                                       r"restores every weight, but 4 have no "
                                                       r"value of their shape"):
        kdet.configs.restore_fine_tune_checkpoint(other_classes)
