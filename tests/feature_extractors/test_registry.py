"""The feature-extractor registry: names → classes, for configs, the zoo and saved models."""

import keras
import pytest

import kdet

# A class definition as a notebook cell holds it: running it twice defines two classes.
_DEFINITION = """
@kdet.feature_extractors.register_feature_extractor("test_registry_redefined")
class RedefinedExtractor(kdet.feature_extractors.SSDFeatureExtractor):
    VERSION = {version}
"""


def _define(version):
    namespace = {"kdet": kdet, "__name__": __name__}
    exec(_DEFINITION.format(version=version), namespace)
    return namespace["RedefinedExtractor"]


def test_a_class_defined_again_replaces_the_registered_one():
    first, second = _define(1), _define(2)
    assert first is not second
    registered = kdet.feature_extractors.get_feature_extractor_class("test_registry_redefined")
    assert registered is second
    assert keras.saving.get_registered_object("kdet>RedefinedExtractor") is second


def test_another_class_under_a_taken_name_is_an_error():
    _define(1)

    class OtherExtractor(kdet.feature_extractors.SSDFeatureExtractor):
        pass

    register = kdet.feature_extractors.register_feature_extractor("test_registry_redefined")
    with pytest.raises(
        ValueError,
        match=r"'test_registry_redefined' is already registered to "
        r".*RedefinedExtractor",
    ):
        register(OtherExtractor)
    assert (
        kdet.feature_extractors.get_feature_extractor_class("test_registry_redefined").__name__
        == "RedefinedExtractor"
    )
