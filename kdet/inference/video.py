"""Video files frame by frame, and annotated videos, with PyAV (`pip install "kdet[video]"`).

PyAV's wheels bundle FFmpeg, so nothing else is installed; kdet imports it only when a video is
read or written.
"""

import fractions

import numpy as np

from kdet.inference.input_files import UnreadableInputError

# Frames per second of the annotated video when the input's rate is unknown.
_DEFAULT_FPS = 30


def _av():
    try:
        import av
    except ImportError:
        raise ValueError(
            'reading videos needs PyAV, which is not installed: pip install "kdet[video]" '
            "(or pip install av)"
        ) from None
    return av


def check_video(path):
    """Opens a video's container: raises `UnreadableInputError` unless it has a video stream."""
    VideoReader(path).close()


class _ClosedOnExit:
    """`with` support for a class with a `close()` method."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


class VideoReader(_ClosedOnExit):
    """The frames of a video file's first video stream, as RGB arrays.

    Args:
        path: the video file.

    Attributes:
        fps: `fractions.Fraction`, the stream's average frame rate (30 when unknown).
        num_frames: int, the frame count the container states (0 when unknown).

    Example:
    ```python
    with VideoReader("clip.mp4") as video:
        for index, seconds, frame in video:   # frame: uint8 [height, width, 3]
            ...
    ```
    """

    def __init__(self, path):
        self.path = path
        av = _av()
        try:
            self._container = av.open(str(path))
        except (av.error.FFmpegError, OSError) as error:
            raise UnreadableInputError(path, f"not a video FFmpeg can read ({error})") from None
        if not self._container.streams.video:
            self._container.close()
            raise UnreadableInputError(path, "no video stream in the file")
        self._stream = self._container.streams.video[0]
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = fractions.Fraction(rate) if rate else fractions.Fraction(_DEFAULT_FPS)
        self.num_frames = int(self._stream.frames or 0)

    def __iter__(self):
        """Yields `(index, seconds, frame uint8 [height, width, 3])`.

        Raises:
            UnreadableInputError: naming the file, where FFmpeg cannot decode it.
        """
        av = _av()
        try:
            for index, frame in enumerate(self._container.decode(self._stream)):
                seconds = float(frame.time) if frame.time is not None else index / self.fps
                yield index, seconds, frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, OSError) as error:
            raise UnreadableInputError(self.path, f"cannot decode the video ({error})") from None

    def close(self):
        self._container.close()


class VideoWriter(_ClosedOnExit):
    """Writes RGB frames as an H.264 MP4 (MPEG-4 Part 2 where FFmpeg lacks libx264).

    Frames of odd width or height are padded by one edge pixel: the YUV 4:2:0 pixel format
    players expect needs even sizes.

    Args:
        path: the `.mp4` file to write.
        fps: frames per second (a number or `fractions.Fraction`).
    """

    def __init__(self, path, fps):
        av = _av()
        self._container = av.open(str(path), mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=fractions.Fraction(fps))
        self._stream.pix_fmt = "yuv420p"
        self._size = None

    def write(self, frame):
        """Appends one uint8 `[height, width, 3]` frame; every frame must have one size."""
        av = _av()
        height, width = frame.shape[:2]
        padding = ((0, height % 2), (0, width % 2), (0, 0))
        frame = np.pad(frame, padding, mode="edge") if any(p[1] for p in padding) else frame
        if self._size is None:
            self._size = frame.shape[:2]
            self._stream.height, self._stream.width = self._size
        packets = self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
        self._container.mux(packets)

    def close(self):
        """Flushes the encoder and closes the file."""
        if self._size is not None:
            self._container.mux(self._stream.encode(None))
        self._container.close()
