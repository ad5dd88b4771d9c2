"""Where kdet caches converted and downloaded weights.

The cache lives in `cache_dir`, else `$KDET_CACHE_DIR`, else `~/.cache/kdet`; its files are
written with `kdet.utils.verified_files.write_verified` and checked by sha256.
"""

import os
import pathlib

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
