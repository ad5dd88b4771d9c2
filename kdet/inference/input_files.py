"""What `kdet predict` reads: image and video files named by paths, folders or glob patterns.

`collect_inputs` turns the command's arguments into `InputFile`s with unique names (`key`),
`read_image` decodes one image (with a clear error for a file Pillow cannot read or one over its
decompression-bomb limit), and `check_input` looks at a file's header only, so a run can refuse
bad files before it loads a model.
"""

import contextlib
import dataclasses
import glob
import pathlib
import warnings

import numpy as np
from PIL import Image

# Extensions a folder or a glob pattern takes as images (files named one by one are tried
# whatever their extension).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Extensions read as videos (with PyAV), frame by frame.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
_GLOB_CHARACTERS = ("*", "?", "[")


class UnreadableInputError(ValueError):
    """An input file that cannot be decoded: `path` and what is wrong with it (`reason`)."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One image or video to run on.

    Attributes:
        path: `pathlib.Path` as the user named it (or as a folder / glob listed it).
        key: str, unique among a run's inputs: the file name, or, for files of one name in
            different folders, the shortest end of their paths that tells them apart (e.g.
            `photos/cat.jpg` and `mine/cat.jpg`). Names the file in `detections.json` and in
            the names of the output files.
        is_video: bool, from the extension (see `VIDEO_EXTENSIONS`).
    """

    path: pathlib.Path
    key: str
    is_video: bool


def collect_inputs(arguments):
    """The files `kdet predict` runs on, in the order given, each once.

    Args:
        arguments: list of str, each one of:
            - an image or video file (any extension; a video by `VIDEO_EXTENSIONS`);
            - a folder: its image and video files (`IMAGE_EXTENSIONS`, `VIDEO_EXTENSIONS`),
              sorted by name, not those of its subfolders;
            - a glob pattern (quoted in the shell, `**` for any depth): the image and video
              files it matches, sorted.

    Returns:
        list of `InputFile`, one per file (a file named twice is run once), keys unique.

    Raises:
        FileNotFoundError: naming every argument that is no file or folder and that no file
            matches.
        ValueError: naming a folder or pattern that holds no image or video file.
    """
    paths, missing, empty = [], [], []
    for argument in arguments:
        path = pathlib.Path(argument)
        if path.is_file():
            paths.append(path)
        elif path.is_dir():
            found = sorted(entry for entry in path.iterdir() if _is_media_file(entry))
            if not found:
                empty.append(f"folder {argument}")
            paths.extend(found)
        elif any(character in argument for character in _GLOB_CHARACTERS):
            matches = sorted(pathlib.Path(p) for p in glob.glob(argument, recursive=True))
            found = [match for match in matches if _is_media_file(match)]
            if found:
                paths.extend(found)
            elif matches:
                empty.append(f"pattern {argument!r}")
            else:
                missing.append(argument)
        else:
            missing.append(argument)
    if missing:
        raise FileNotFoundError(
            f"no such file or folder, and no file matching: {', '.join(missing)}"
        )
    if empty:
        raise ValueError(
            f"{', '.join(empty)}: no image or video file in it; expected files ending in "
            f"{', '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)}"
        )
    unique = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    keys = unique_keys(list(unique))
    return [
        InputFile(path, key, path.suffix.lower() in VIDEO_EXTENSIONS)
        for path, key in zip(unique.values(), keys)
    ]


def unique_keys(paths):
    """For distinct absolute paths, the shortest ends of them (`/`-joined) that are unique.

    A file name stays the key unless another path has the same name; then one more folder is
    taken at a time, for those paths only, until the keys differ.

    Args:
        paths: list of distinct absolute `pathlib.Path`s.

    Returns:
        list of str keys, in the order of `paths`.

    Example:
    ```python
    unique_keys([Path("/a/x/cat.jpg"), Path("/b/x/cat.jpg"), Path("/a/dog.jpg")])
    # ["a/x/cat.jpg", "b/x/cat.jpg", "dog.jpg"]
    ```
    """
    depths = [1] * len(paths)
    while True:
        keys = ["/".join(path.parts[-depth:]) for path, depth in zip(paths, depths)]
        counts = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        clashing = [i for i, key in enumerate(keys) if counts[key] > 1]
        if not clashing:
            return keys
        for i in clashing:
            # Distinct absolute paths differ in some part, so this ends before the root.
            depths[i] = min(depths[i] + 1, len(paths[i].parts))


def check_input(input_file, allow_large_images=False):
    """Reads a file's header only: raises `UnreadableInputError` if it cannot be run on.

    Images: Pillow must know the format and the size must be within its limit (see
    `read_image`). Videos: the container must open and hold a video stream.
    """
    if input_file.is_video:
        from kdet.inference.video import check_video

        check_video(input_file.path)
        return
    with _opened_image(input_file.path, allow_large_images):
        pass


def read_image(path, allow_large_images=False):
    """Decodes an image file as RGB (grayscale, palette and RGBA images converted).

    Args:
        path: the image file.
        allow_large_images: bool. Decode images over Pillow's decompression-bomb limit
            (`2 * PIL.Image.MAX_IMAGE_PIXELS` pixels, 178,956,970 by default) too. Defaults to
            False.

    Returns:
        uint8 `[height, width, 3]`.

    Raises:
        UnreadableInputError: naming the file, for one Pillow cannot identify or decode, or
            one over the limit without `allow_large_images`.
    """
    with _opened_image(path, allow_large_images) as image:
        try:
            return np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as error:
            raise UnreadableInputError(path, _image_error(error)) from None


def pixel_limit():
    """The most pixels an image may have without `allow_large_images`: Pillow's own refusal
    point, twice `PIL.Image.MAX_IMAGE_PIXELS` (None when that is None)."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * limit


@contextlib.contextmanager
def _opened_image(path, allow_large_images):
    """The Pillow image of `path` (header read), its size checked against `pixel_limit`.

    Pillow's own check is lifted (and its warning silenced) while the file is open: this one
    names the file and the flag that lifts it, instead of a `DecompressionBombError` traceback.
    """
    limit = pixel_limit()
    saved = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = None
        try:
            try:
                image = Image.open(path)
            except (OSError, SyntaxError, ValueError) as error:
                raise UnreadableInputError(path, _image_error(error)) from None
            with image:
                width, height = image.size
                if not allow_large_images and limit is not None and width * height > limit:
                    raise UnreadableInputError(
                        path,
                        f"{width}x{height} = {width * height} pixels, over Pillow's limit of "
                        f"{limit} (a guard against decompression bombs); pass "
                        "--allow_large_images (allow_large_images=True in Python) to decode it",
                    )
                yield image
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _image_error(error):
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image file Pillow can read"
    return f"cannot decode the image ({error})"


def _is_media_file(path):
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
