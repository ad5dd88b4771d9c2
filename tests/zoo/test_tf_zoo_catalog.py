"""The TF1 / TF2 detection zoo catalog: its records against the zoo pages, whether kdet builds
each model against the full sample configs, listing, entries and `kdet zoo`."""

import configparser
import fnmatch
import importlib.util
import json
import pathlib
import re

import pytest

import kdet.zoo
from kdet import cli
from kdet.configs.model_builder import check_architecture
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse_file
from kdet.zoo import tf_detection_zoo
from kdet.zoo import tf_zoo
from kdet.zoo.tf_detection_zoo import get_tf_zoo_entry

SAMPLE_CONFIGS = pathlib.Path(__file__).parents[1] / "data" / "tfod_configs"
ZOO_URL = "http://download.tensorflow.org/models/object_detection/"


def test_the_catalog_has_every_row_of_the_two_zoo_pages():
    tf1, tf2 = kdet.zoo.list("tf1"), kdet.zoo.list("tf2")
    assert (len(tf1), len(tf2)) == (47, 43)
    assert kdet.zoo.list("all") == kdet.zoo.list() + tf1 + tf2
    assert kdet.zoo.list() == ["faster_rcnn_mobilenet_v2_deepforest", "ssd_mobilenet_v2_coco"]
    assert len(set(kdet.zoo.list("all"))) == 92  # no name twice, none equal to kdet's own
    # First and last rows of each page, as written there.
    assert (tf1[0], tf1[-1]) == ("ssd_mobilenet_v1_coco_2018_01_28", "spaghettinet_edgetpu_l_2021_10_13")
    assert (tf2[0], tf2[-1]) == ("centernet_hg104_512x512_coco17_tpu-8", "extremenet_20210507")
    catalog = json.loads(tf_detection_zoo.CATALOG_FILE.read_text())
    for source in ("tf1", "tf2"):
        assert catalog["sources"][source]["url"].endswith(
            f"research/object_detection/g3doc/{source}_detection_zoo.md")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", catalog["sources"][source]["retrieved"])
    assert "kdet did not measure them" in catalog["description"]


@pytest.mark.parametrize(
    "name, title, url, speed, column, value, maps, outputs",
    [
        ("ssd_mobilenet_v2_coco_2018_03_29", "ssd_mobilenet_v2_coco",
         ZOO_URL + "ssd_mobilenet_v2_coco_2018_03_29.tar.gz", 31, "COCO mAP", "22",
         {"box": 22}, ("Boxes",)),
        ("faster_rcnn_resnet50_lowproposals_coco_2018_01_28",
         "faster_rcnn_resnet50_lowproposals_coco",
         ZOO_URL + "faster_rcnn_resnet50_lowproposals_coco_2018_01_28.tar.gz", 64, "COCO mAP",
         "", {}, ("Boxes",)),
        ("mask_rcnn_resnet50_atrous_coco_2018_01_28", "mask_rcnn_resnet50_atrous_coco",
         ZOO_URL + "mask_rcnn_resnet50_atrous_coco_2018_01_28.tar.gz", 343, "COCO mAP", "29",
         {"box": 29}, ("Masks",)),
        ("ssdlite_mobilenet_edgetpu_coco_quant", "ssd_mobilenet_edgetpu_coco",
         ("https://storage.cloud.google.com/mobilenet_edgetpu/checkpoints/"
          "ssdlite_mobilenet_edgetpu_coco_quant.tar.gz"), 6.6, "COCO mAP (fp32/uint8)", "-/24.3",
         {"box_uint8": 24.3}, ("Boxes",)),
        ("facessd_mobilenet_v2_quantized_320x320_open_image_v4",
         "facessd_mobilenet_v2_quantized_open_image_v4",
         ZOO_URL + "facessd_mobilenet_v2_quantized_320x320_open_image_v4.tar.gz", 20,
         "Open Images mAP@0.5", "73 (faces)", {"box": 73}, ("Boxes",)),
        ("context_rcnn_resnet101_snapshot_serengeti_2020_06_10",
         "context_rcnn_resnet101_snapshot_serengeti",
         ZOO_URL + "context_rcnn_resnet101_snapshot_serengeti_2020_06_10.tar.gz", None,
         "COCO mAP@0.5", "56", {"box": 56}, ("Boxes",)),
        ("centernet_hg104_1024x1024_kpts_coco17_tpu-32",
         "CenterNet HourGlass104 Keypoints 1024x1024",
         ZOO_URL + "tf2/20200711/centernet_hg104_1024x1024_kpts_coco17_tpu-32.tar.gz", 211,
         "COCO mAP", "42.8/64.5", {"box": 42.8, "keypoint": 64.5}, ("Boxes", "Keypoints")),
        ("centernet_mobilenetv2fpn_512x512_coco17_kpts",
         "CenterNet MobileNetV2 FPN Keypoints 512x512",
         ZOO_URL + "tf2/20210210/centernet_mobilenetv2fpn_512x512_coco17_kpts.tar.gz", 6,
         "COCO mAP", "41.7", {}, ("Boxes", "Keypoints")),
        ("ssd_mobilenet_v2_320x320_coco17_tpu-8", "SSD MobileNet v2 320x320",
         ZOO_URL + "tf2/20200711/ssd_mobilenet_v2_320x320_coco17_tpu-8.tar.gz", 19, "COCO mAP",
         "20.2", {"box": 20.2}, ("Boxes",)),
        ("mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8",
         "Mask R-CNN Inception ResNet V2 1024x1024",
         ZOO_URL + "tf2/20200711/mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8.tar.gz", 301,
         "COCO mAP", "39.0/34.6", {"box": 39.0, "mask": 34.6}, ("Boxes", "Masks")),
        ("extremenet_20200711", "ExtremeNet (deprecated)",
         ZOO_URL + "tf2/20200711/extremenet.tar.gz", None, "COCO mAP", "--", {}, ("Boxes",)),
    ],
)
def test_records_hold_the_pages_numbers(name, title, url, speed, column, value, maps, outputs):
    entry = kdet.zoo.get_entry(name)
    assert isinstance(entry, kdet.zoo.TFZooEntry)
    assert (entry.title, entry.url, entry.speed_ms, entry.metric) == (title, url, speed, column)
    assert entry.columns[column] == value and entry.map == maps and entry.outputs == outputs
    assert "kdet did not measure them" in entry.metadata["metrics_note"]


def test_input_size_and_architecture_come_from_the_sample_config_or_the_name():
    tf2 = get_tf_zoo_entry("ssd_mobilenet_v2_320x320_coco17_tpu-8")
    # The sample config (and the archive's) resizes to 300x300 despite the name.
    assert tf2.input_size == {"type": "fixed_shape", "height": 300, "width": 300}
    assert (tf2.architecture_from, tf2.input_size_text) == ("config", "300x300")
    assert tf2.config.endswith("configs/tf2/ssd_mobilenet_v2_320x320_coco17_tpu-8.config")
    assert tf2.architecture == {"meta_architecture": "ssd",
                                "feature_extractor": "ssd_mobilenet_v2_keras", "variants": []}
    tf1 = get_tf_zoo_entry("faster_rcnn_resnet101_lowproposals_coco_2018_01_28")
    assert tf1.config.endswith("samples/configs/faster_rcnn_resnet101_coco.config")
    assert tf1.input_size_text == "600-1024" and tf1.num_classes == 90
    by_name = get_tf_zoo_entry("faster_rcnn_inception_resnet_v2_640x640_coco17_tpu-8")
    assert (by_name.architecture_from, by_name.config) == ("name", None)
    assert by_name.architecture["feature_extractor"] == "faster_rcnn_inception_resnet_v2_keras"
    kitti = get_tf_zoo_entry("faster_rcnn_resnet101_kitti_2018_01_28")
    assert (kitti.dataset, kitti.num_classes, kitti.label_map) == ("KITTI", None, None)


def test_coco_models_have_the_coco_label_map():
    entry = kdet.zoo.get_entry("ssd_resnet50_v1_fpn_640x640_coco17_tpu-8")
    assert entry.label_map == kdet.zoo.get_entry("ssd_mobilenet_v2_coco").label_map
    assert (entry.label_map[1], entry.label_map[90]) == ("person", "toothbrush")


def _sample_config(entry):
    return SAMPLE_CONFIGS / entry.config.rsplit("/", 1)[1] if entry.config else None


def test_kdet_can_build_agrees_with_check_architecture_on_the_full_sample_configs():
    checked = 0
    for name in kdet.zoo.list("tf1") + kdet.zoo.list("tf2"):
        entry = get_tf_zoo_entry(name)
        config = _sample_config(entry)
        if config is None or not config.is_file():
            continue
        try:
            check_architecture(parse_file(config))
            builds = True
        except ConfigError:
            builds = False
        assert entry.kdet_can_build == builds, (name, entry.kdet_support())
        checked += 1
    assert checked >= 30  # the sample configs in tests/data/tfod_configs name 31 zoo models


def test_what_kdet_cannot_build_says_why():
    reasons = {
        "spaghettinet_edgetpu_s_2021_10_13": "feature extractor 'ssd_spaghettinet' is not in kdet",
        "extremenet_20210507": "the feature extractor of extremenet_20210507 is not known from "
                               "its name",
    }
    for name, reason in reasons.items():
        assert reason in get_tf_zoo_entry(name).kdet_support(), name
    loadable = [n for n in kdet.zoo.list("all")[2:] if get_tf_zoo_entry(n).kdet_can_build]
    assert len(loadable) == 85
    assert "faster_rcnn_resnet152_v1_640x640_coco17_tpu-8" in loadable
    assert "ssd_resnet152_v1_fpn_1024x1024_coco17_tpu-8" in loadable
    assert "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8" in loadable
    assert "efficientdet_d7_coco17_tpu-32" in loadable
    assert "ssdlite_mobiledet_cpu_320x320_coco_2020_05_19" in loadable
    assert "centernet_mobilenetv2fpn_512x512_coco17_kpts" in loadable
    assert "mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8" in loadable
    assert "rfcn_resnet101_coco_2018_01_28" in loadable
    assert "context_rcnn_resnet101_snapshot_serengeti_2020_06_10" in loadable
    # Refused before any download.
    with pytest.raises(ValueError, match="kdet cannot build TF detection zoo model "
                                         "spaghettinet_edgetpu_s_2021_10_13 yet: "):
        kdet.zoo.load("spaghettinet_edgetpu_s_2021_10_13")


def test_unknown_names_suggest_kdet_and_tf_zoo_names():
    with pytest.raises(ValueError, match=r"Unknown zoo model 'ssd_mobilenet_v2_320x320'\. Did "
                                         r"you mean 'ssd_mobilenet_v2_coco'\? Available models: "
                                         r".*\. Or, of the TF detection zoo, "
                                         r"'ssd_mobilenet_v2_320x320_coco17_tpu-8' or"):
        kdet.zoo.get_entry("ssd_mobilenet_v2_320x320")
    with pytest.raises(ValueError, match="source must be 'kdet', 'tf1', 'tf2' or 'all'"):
        kdet.zoo.list("tf3")
    with pytest.raises(ValueError, match="archive= is for TF detection zoo models"):
        kdet.zoo.load("ssd_mobilenet_v2_coco", archive="x.tar.gz")


def test_cli_lists_kdet_models_by_default_and_the_tf_zoos_on_request(capsys):
    assert cli.main(["zoo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("faster_rcnn_mobilenet_v2_deepforest: ")
    assert lines[-1] == "(and 90 TF OD API detection zoo models: kdet zoo --source tf1|tf2|all)"
    assert cli.main(["zoo", "--source", "tf2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "source", "dataset", "mAP", "(source's", "numbers)",
                                "input", "kdet", "builds"]
    assert len(lines) == 1 + 43 + 1 and lines[-1].startswith("43 models. mAP: the zoo pages'")
    row = next(line for line in lines if line.startswith("ssd_mobilenet_v2_320x320_coco17"))
    assert row.split() == ["ssd_mobilenet_v2_320x320_coco17_tpu-8", "tf2", "COCO", "2017",
                           "COCO", "mAP", "20.2", "300x300", "yes"]
    assert cli.main(["zoo", "--source", "all", "--buildable"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 2 + 85 + 1 and all(line.endswith("yes") for line in lines[1:-1])


def test_the_catalog_ships_in_the_package():
    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).parents[2] / "setup.cfg")
    patterns = [p.strip() for p in setup["options.package_data"]["kdet.zoo"].split(",")]
    for path in (tf_detection_zoo.CATALOG_FILE, tf_zoo.COCO_KEYPOINT_LABEL_MAP):
        assert any(fnmatch.fnmatch(path.name, p) for p in patterns), path.name


def test_the_docs_list_every_catalog_model():
    text = (pathlib.Path(__file__).parents[2] / "docs" / "zoo.md").read_text()
    table = text.split("<!-- tf-detection-zoo-table -->")[1].split("<!-- /tf-detection-zoo-")[0]
    rows = [line.split(" | ") for line in table.strip().splitlines()[2:]]
    assert [row[0].strip("|` ") for row in rows] == kdet.zoo.list("tf1") + kdet.zoo.list("tf2")
    for row in rows:
        entry = get_tf_zoo_entry(row[0].strip("|` "))
        assert row[1:] == [entry.source.upper(), entry.dataset,
                           f"{entry.metric}: {entry.columns[entry.metric] or '–'}",
                           f"{entry.input_size_text} |"]


def _catalog_maker():
    path = pathlib.Path(__file__).parents[2] / "benchmarks" / "make_tf_detection_zoo_catalog.py"
    spec = importlib.util.spec_from_file_location("make_tf_detection_zoo_catalog", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_catalog_maker_parses_the_zoo_tables():
    maker = _catalog_maker()
    tf1 = maker.parse_page(
        "## COCO-trained models\n\n"
        "Model name | Speed (ms) | COCO mAP[^1] | Outputs\n--- | :-: | :-: | :-:\n"
        f"[a_coco ☆]({ZOO_URL}a_coco_2018_01_28.tar.gz) | 30 | 21 | Boxes\n"
        f"[a_low]({ZOO_URL}a_low_2018_01_28.tar.gz) | 64 |  | Boxes\n\n"
        "Model name | Pixel 4 DSP Latency (ms) | COCO mAP (fp32/uint8) | Outputs\n--- | - | - | -\n"
        f"[b]({ZOO_URL}b.tar.gz) | 12.3 | 28.9/28.8 | Boxes\n\n"
        "## Kitti-trained models\n\n"
        "Model name | Speed (ms) | Pascal mAP@0.5 | Outputs\n--- | - | - | -\n"
        f"[k]({ZOO_URL}k_2018_01_28.tar.gz) | 79 | 87 | Boxes\n", "tf1")
    assert [(r["name"], r["title"], r["dataset"], r["metric"], r["map"], r["speed_ms"])
            for r in tf1] == [
        ("a_coco_2018_01_28", "a_coco ☆", "COCO", "COCO mAP", {"box": 21.0}, 30.0),
        ("a_low_2018_01_28", "a_low", "COCO", "COCO mAP", {}, 64.0),
        ("b", "b", "COCO", "COCO mAP (fp32/uint8)", {"box": 28.9, "box_uint8": 28.8}, 12.3),
        ("k_2018_01_28", "k", "KITTI", "Pascal mAP@0.5", {"box": 87.0}, 79.0),
    ]
    assert tf1[2]["speed_column"] == "Pixel 4 DSP Latency (ms)"
    tf2 = maker.parse_page(
        "Model name | Speed (ms) | COCO mAP | Outputs\n--- | - | - | -\n"
        f"[K]({ZOO_URL}tf2/1/k.tar.gz) | 76 | 40.0/61.4 | Boxes/Keypoints\n"
        f"[M]({ZOO_URL}tf2/1/m.tar.gz) | 6 | 41.7 | Boxes/Keypoints\n"
        f"[X]({ZOO_URL}tf2/1/x.tar.gz) | -- | -- | Boxes\n"
        f"[X2]({ZOO_URL}tf2/2/x.tar.gz) | -- | -- | Boxes\n", "tf2")
    maker._disambiguate(tf2)
    assert [(r["name"], r["map"], r["outputs"], r["speed_ms"]) for r in tf2] == [
        ("k", {"box": 40.0, "keypoint": 61.4}, ["Boxes", "Keypoints"], 76.0),
        ("m", {}, ["Boxes", "Keypoints"], 6.0),  # one number for two outputs: not parsed
        ("x_1", {}, ["Boxes"], None),
        ("x_2", {}, ["Boxes"], None),
    ]
