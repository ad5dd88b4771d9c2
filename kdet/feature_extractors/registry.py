"""Name → class table of feature extractors, read by configs and the zoo.

A user's own extractor registers the same way as kdet's, and then works from Python, from
pipeline configs (`feature_extractor { type: 'my_extractor' }`) and from zoo entries.
"""

import difflib

import keras

_FEATURE_EXTRACTORS = {}


def register_feature_extractor(name):
    """Class decorator: registers a feature extractor under `name` and for Keras serialization.

    The same class defined again (a notebook cell run again after an edit, a reloaded module)
    replaces the registered one; another class under a taken `name`, or with the class name of
    another registered class, is an error.

    Example:
    ```python
    @kdet.feature_extractors.register_feature_extractor("my_ssd_extractor")
    class MySSDExtractor(kdet.feature_extractors.SSDFeatureExtractor):
        ...
    ```
    """

    def decorator(cls):
        if name in _FEATURE_EXTRACTORS and not _same_definition(_FEATURE_EXTRACTORS[name], cls):
            raise ValueError(
                f"feature extractor name {name!r} is already registered to "
                f"{_FEATURE_EXTRACTORS[name].__module__}.{_FEATURE_EXTRACTORS[name].__name__}"
            )
        keras_name = f"kdet>{cls.__name__}"
        existing = keras.saving.get_registered_object(keras_name)
        if existing is not None and not _same_definition(existing, cls):
            # Saved models name classes "kdet>ClassName": two classes with one name would
            # silently load as the wrong one.
            raise ValueError(
                f"a different class is already registered for Keras serialization as "
                f"{keras_name!r} ({existing.__module__}); give {cls.__module__}.{cls.__name__} "
                "another class name"
            )
        cls = keras.saving.register_keras_serializable(package="kdet")(cls)
        cls.registered_name = name
        _FEATURE_EXTRACTORS[name] = cls
        return cls

    return decorator


def _same_definition(existing, cls):
    """Whether `cls` is `existing` or its definition run again (a re-run notebook cell, a
    reloaded module): the new class then replaces the old one."""
    return (existing.__module__, existing.__qualname__) == (cls.__module__, cls.__qualname__)


def get_feature_extractor_class(name):
    """Returns the class registered under `name`; unknown names get a "did you mean" hint."""
    if name not in _FEATURE_EXTRACTORS:
        close = difflib.get_close_matches(name, _FEATURE_EXTRACTORS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown feature extractor {name!r}.{hint} Registered: {sorted(_FEATURE_EXTRACTORS)}"
        )
    return _FEATURE_EXTRACTORS[name]


def build_feature_extractor(name, **kwargs):
    """Builds the feature extractor registered under `name` with `kwargs`."""
    return get_feature_extractor_class(name)(**kwargs)


def available_feature_extractors():
    """Sorted names of the registered feature extractors."""
    return sorted(_FEATURE_EXTRACTORS)
