"""`docs/api.md` is generated from the docstrings of kdet's public names and kept in sync here."""

import collections
import dataclasses
import importlib.util
import pathlib
import re

import pytest

import kdet

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "make_api_reference.py"


@pytest.fixture(scope="module")
def generator():
    """`docs/make_api_reference.py` imported as a module (`docs/` is not a package)."""
    spec = importlib.util.spec_from_file_location("make_api_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference(generator):
    return generator.render()


def test_api_reference_is_up_to_date(generator, capsys):
    code = generator.check()
    diff = capsys.readouterr().out
    assert code == 0, (
        f"docs/api.md is out of date: regenerate it with `{generator.REGENERATE_COMMAND}` "
        f"and commit it.\n{diff}"
    )


def test_every_public_name_has_a_docstring(generator):
    missing = generator.missing_docstrings()
    assert not missing, (
        "public names without a docstring (for a constant: a `#` comment right above its "
        f"assignment): {', '.join(missing)}"
    )


def test_docstrings_written_by_python_do_not_count(generator):
    @dataclasses.dataclass
    class Settings:
        size: int = 0

    Pair = collections.namedtuple("Pair", "first second")
    assert generator.docstring(Settings, "Settings") == ""
    assert generator.docstring(Pair, "Pair") == ""
    assert generator.docstring(kdet.data.LabelMapItem, "LabelMapItem").startswith("One `item`")


def test_a_constant_is_documented_by_the_comment_above_it(generator):
    assert generator.docstring(kdet.targets.IGNORED, "IGNORED") == (
        "The anchor takes no part in the loss: neither positive nor negative (cls weight 0)."
    )
    # `-2` assigned to another name elsewhere is not this constant's documentation.
    assert generator.docstring(kdet.targets.IGNORED, "NOT_A_KDET_CONSTANT") == ""


def test_public_modules_are_the_exported_packages(generator):
    names = [module.__name__ for module in generator.public_modules()]
    # `kdet.data.augmentation` is in `kdet.data.__all__`; `kdet.cli` is not a `_SUBPACKAGES`.
    expected = {"kdet", "kdet.data.augmentation", *(f"kdet.{name}" for name in kdet._SUBPACKAGES)}
    assert set(names) == expected
    assert len(names) == len(expected)
    assert names[0] == "kdet"
    assert names.index("kdet.data.augmentation") == names.index("kdet.data") + 1


def test_public_names_follow_all_else_what_kdet_defines(generator):
    plots = generator.public_names(kdet.plots)
    assert "read_scalars" in plots and "plot_training_curves" in plots
    # Imported third-party objects and modules are not kdet's API.
    assert not {"np", "tf", "matplotlib", "Figure", "EventFileLoader"} & set(plots)
    assert list(generator.public_names(kdet.zoo)) == sorted(kdet.zoo.__all__)
    visualization = generator.public_names(kdet.visualization)
    assert visualization["GROUNDTRUTH_COLOR"] == (0, 255, 0)
    assert "keras" not in visualization
    assert set(generator.public_names(kdet)) == set(kdet._CLASSES)


def test_an_object_exported_twice_is_documented_once(reference):
    assert reference.count("### `kdet.models.SSD`") == 1
    assert "### `kdet.SSD`" not in reference
    assert "- `kdet.SSD` is [`kdet.models.SSD`](#kdetmodelsssd)" in reference


def test_entries_show_signature_base_docstring_and_methods(reference):
    entry = reference.split("### `kdet.layers.FixedShapeResizer`")[1].split("\n### ")[0]
    assert "class FixedShapeResizer(height, width, resize_method='bilinear')" in entry
    assert "*class*, bases: `kdet.layers.ImageResizer`" in entry
    assert "Resizes every image to `height × width`" in entry
    assert "- `content_and_padded_size(height, width)`: Returns" in entry
    # Only the first paragraph of the docstring: the Args section stays in the source.
    assert "Args:" not in entry


def test_long_signatures_are_wrapped(reference):
    code_lines = []
    inside = False
    for line in reference.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside:
            code_lines.append(line)
    assert "class FasterRCNN(" in code_lines
    assert max(len(line) for line in code_lines) <= 100


def test_anchors_of_the_contents_exist(reference):
    headings = re.findall(r"^#{2,3} (.+)$", reference, flags=re.MULTILINE)
    anchors = {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}
    links = set(re.findall(r"\]\(#([^)]+)\)", reference))
    assert links and links <= anchors, sorted(links - anchors)


def test_check_reports_a_stale_file(generator, reference, tmp_path, capsys):
    path = tmp_path / "api.md"
    path.write_text(reference.replace("Pure box functions", "Old box functions"))
    assert generator.check(path) == 1
    printed = capsys.readouterr().out
    assert "-Old box functions" in printed and "+Pure box functions" in printed
    assert generator.REGENERATE_COMMAND in printed
    path.write_text(reference)
    assert generator.check(path) == 0
