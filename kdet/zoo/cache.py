"""Where kdet caches converted and downloaded weights.

The cache lives in `cache_dir`, else `$KDET_CACHE_DIR`, else `~/.cache/kdet`; its files are
written with `kdet.utils.verified_files.write_verified` and checked by sha256.
"""

import hashlib
import os
import pathlib
import warnings

from kdet.utils.verified_files import write_verified

CACHE_DIR_ENV = "KDET_CACHE_DIR"


def resolve_cache_dir(cache_dir=None):
    """The cache folder: `cache_dir`, else `$KDET_CACHE_DIR`, else `~/.cache/kdet`.

    Args:
        cache_dir: optional str or path-like.

    Returns:
        `pathlib.Path`, not created.
    """
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_DIR_ENV) or pathlib.Path.home() / ".cache" / "kdet"
    return pathlib.Path(cache_dir).expanduser()


def model_layout(model):
    """12 hex digits of a sha256 over the Keras version and every layer's class and weight
    shapes, in order: what cached weights are keyed by (`kdet.zoo.zoo.cached_weights_path`),
    so that a kdet or Keras upgrade that changes a model's layers converts again.

    Args:
        model: a built Keras model.

    Returns:
        str.
    """
    import keras

    digest = hashlib.sha256(keras.__version__.encode())
    for layer in model._flatten_layers(include_self=False):
        shapes = [tuple(weight.shape) for weight in layer.weights]
        digest.update(f"{type(layer).__qualname__} {shapes}\n".encode())
    return digest.hexdigest()[:12]


def cache_converted_weights(name, model, path, log, stacklevel):
    """Writes the weights of `model`, converted for the zoo model `name`, to the cache file
    `path` (checksummed); a cache that cannot be written only costs a warning.

    Args:
        name: str, the zoo model's name (for the warning).
        model: the `keras.Model` holding the converted weights.
        path: `pathlib.Path` of the `.weights.h5` file.
        log: the `kdet.utils.progress.StageLog` of the conversion.
        stacklevel: int, the warning's stack level as seen from this function's caller.
    """
    log("caching the weights")
    try:
        write_verified(path, model.save_weights)
    except OSError as error:
        warnings.warn(
            f"The converted weights of {name} could not be cached in {path} ({error}); "
            "they will be converted again next time. Pass a writable cache_dir or set "
            f"${CACHE_DIR_ENV}.",
            stacklevel=stacklevel + 1,
        )
