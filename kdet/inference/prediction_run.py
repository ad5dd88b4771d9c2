"""Runs a detector over images and videos and writes what `kdet predict` writes.

For each image `<name>_detections.jpg` (the image with its boxes drawn); for each video
`<name>_detections.mp4` (every frame drawn) and `<name>_detections.json` (the detections of every
frame); and `detections.json`, `{image key: [detections]}`. A Mask R-CNN's masks are drawn too,
and each detection carries its mask as a COCO results `"segmentation"` (compressed RLE). `<name>` is the input's key (its file
name, or the end of its path that tells it apart from another input of that name) without its
extension, `/` replaced by `_`; names are unique within a run.

A file that cannot be read is skipped with a warning naming it; with `strict`, the run stops at
it and writes nothing. Everything is written to a fresh `RunFolder` (see there) at the end.
"""

import json
import sys

from tqdm import tqdm

from kdet.inference.input_files import UnreadableInputError
from kdet.inference.input_files import check_input
from kdet.inference.input_files import read_image
from kdet.inference.run_folder import DETECTIONS_JSON
from kdet.inference.run_folder import MANIFEST
from kdet.inference.run_folder import RunFolder


def readable_inputs(inputs, strict=False, allow_large_images=False):
    """The inputs whose headers read (`check_input`), before any model is loaded.

    Args:
        inputs: list of `kdet.inference.InputFile`.
        strict: bool. Raise for any unreadable file instead of skipping it with a warning.
        allow_large_images: bool, see `read_image`.

    Returns:
        The readable `InputFile`s, in order.

    Raises:
        ValueError: with `strict`, naming every unreadable file and why; without it, when no
            input can be read.
    """
    readable, problems = [], []
    for input_file in inputs:
        try:
            check_input(input_file, allow_large_images)
            readable.append(input_file)
        except UnreadableInputError as error:
            problems.append(error)
    if problems and strict:
        raise ValueError(
            f"{len(problems)} input file(s) cannot be read (--strict: nothing was written): "
            + "; ".join(str(problem) for problem in problems)
        )
    for problem in problems:
        _warn_skipped(problem)
    if not readable:
        raise ValueError(
            f"none of the {len(inputs)} input file(s) can be read; nothing was written"
        )
    return readable


def predict_to_folder(
    detector,
    inputs,
    output_dir="runs/detections",
    score_threshold=0.5,
    tile_size=None,
    tile_stride=None,
    strict=False,
    overwrite=False,
    allow_large_images=False,
    progress=True,
    log=print,
):
    """Detects objects in image and video files and writes the results to a run folder.

    Args:
        detector: a `kdet.inference.LoadedDetector`.
        inputs: list of `kdet.inference.InputFile` (e.g. from `collect_inputs`).
        output_dir: the folder asked for; a non-empty one is kept and the run goes to the next
            numbered one (`runs/detections2`, …) unless `overwrite`. Defaults to
            `"runs/detections"`.
        score_threshold: float, lowest score kept. Defaults to `0.5`.
        tile_size, tile_stride: optional ints, see `LoadedDetector.detect`.
        strict: bool. Stop at the first file that cannot be decoded, writing nothing (default:
            skip it with a warning).
        overwrite: bool. Write into `output_dir` itself, replacing the earlier run's outputs.
        allow_large_images: bool, see `read_image`.
        progress: bool. A progress bar per video (on stderr). Defaults to True.
        log: callable taking one line, for the per-file summaries. Defaults to `print`.

    Returns:
        dict: `"folder"` (`pathlib.Path` written to), `"images"` (`{key: [detections]}`, as in
        `detections.json`), `"videos"` (`{key: number of frames}`), `"skipped"` (list of str).

    Raises:
        ValueError: with `strict`, naming a file that cannot be decoded; without it, when
            every input was skipped. Nothing is written then.
    """
    names = _output_names(inputs)
    run = RunFolder(output_dir, overwrite=overwrite)
    images, videos, skipped = {}, {}, []
    try:
        for input_file in inputs:
            try:
                if input_file.is_video:
                    videos[input_file.key] = _predict_video(
                        detector, input_file, run, names[input_file.key], score_threshold,
                        tile_size, tile_stride, progress, log,
                    )
                else:
                    images[input_file.key] = _predict_image(
                        detector, input_file, run, names[input_file.key], score_threshold,
                        tile_size, tile_stride, allow_large_images, log,
                    )
            except UnreadableInputError as error:
                if strict:
                    raise ValueError(f"{error} (--strict: nothing was written)") from None
                _warn_skipped(error)
                skipped.append(str(error))
        if not images and not videos:
            raise ValueError(
                f"none of the {len(inputs)} input file(s) could be read; nothing was written"
            )
        run.staged(DETECTIONS_JSON).write_text(json.dumps(images, indent=2) + "\n")
        run.commit()
    except BaseException:
        run.discard()
        raise
    return {"folder": run.folder, "images": images, "videos": videos, "skipped": skipped}


def _predict_image(detector, input_file, run, name, score_threshold, tile_size, tile_stride,
                   allow_large_images, log):
    from kdet import visualization

    pixels = read_image(input_file.path, allow_large_images)
    found, drawn = _detect_and_draw(detector, pixels, score_threshold, tile_size, tile_stride)
    visualization.save_image(drawn, run.staged(f"{name}.jpg"))
    summary = ", ".join(f"{d['name']} {d['score']:.2f}" for d in found) or "nothing"
    log(f"{input_file.key}: {summary}")
    return found


def _predict_video(detector, input_file, run, name, score_threshold, tile_size, tile_stride,
                   progress, log):
    from kdet.inference.video import VideoReader
    from kdet.inference.video import VideoWriter

    frames, seen = [], {}
    with VideoReader(input_file.path) as video:
        bar = tqdm(total=video.num_frames or None, desc=input_file.key, unit="frame",
                   disable=not progress, file=sys.stderr)
        try:
            with VideoWriter(run.staged(f"{name}.mp4"), video.fps) as writer:
                for index, seconds, pixels in video:
                    found, drawn = _detect_and_draw(
                        detector, pixels, score_threshold, tile_size, tile_stride
                    )
                    writer.write(drawn)
                    frames.append({"frame": index, "time": round(seconds, 4), "detections": found})
                    for name_seen in {d["name"] for d in found}:
                        seen[name_seen] = seen.get(name_seen, 0) + 1
                    bar.update()
        except UnreadableInputError:
            run.staged(f"{name}.mp4").unlink(missing_ok=True)
            raise
        finally:
            bar.close()
        height, width = pixels.shape[:2] if frames else (0, 0)
        record = {"source": str(input_file.path), "fps": float(video.fps), "width": width,
                  "height": height, "frames": frames}
    run.staged(f"{name}.json").write_text(json.dumps(record) + "\n")
    shown = ", ".join(f"{label} in {count}" for label, count in
                      sorted(seen.items(), key=lambda item: -item[1])) or "nothing"
    log(f"{input_file.key}: {len(frames)} frames; {shown}")
    return len(frames)


def _detect_and_draw(detector, pixels, score_threshold, tile_size, tile_stride):
    """`(detections as JSON-ready dicts, the image with them drawn)`."""
    from kdet import visualization

    kept = detector.detect(pixels, tile_size=tile_size, tile_stride=tile_stride,
                           score_threshold=score_threshold)
    found = [
        {
            "label": int(label),
            "name": detector.name(label),
            "score": round(float(score), 4),
            "box_yxyx": [round(float(v), 1) for v in box],
        }
        for box, label, score in zip(kept["boxes"], kept["labels"], kept["confidences"])
    ]
    if "masks" in kept:
        for detection, segmentation in zip(found, _mask_segmentations(kept["masks"]), strict=True):
            detection["segmentation"] = segmentation
    drawn = visualization.draw_detections(
        pixels, kept, label_map=detector.label_map, score_threshold=score_threshold,
        bounding_box_format="yxyx",
    )
    return found, drawn


def _mask_segmentations(masks):
    """Mask probabilities `[K, height, width]` → K COCO results `segmentation`s: compressed RLE
    `{"size": [height, width], "counts": str}` (pycocotools) of the pixels over 0.5, as
    `kdet.evaluation.compute_coco_mask_metrics` binarizes them; `pycocotools.mask.decode`
    reads them back."""
    from kdet.evaluation.coco_metrics import encode_masks

    if not len(masks):
        return []
    return [
        {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
        for rle in encode_masks(masks)
    ]


def _output_names(inputs):
    """`{key: output file stem}`: the key without extension, `/` → `_`, `_detections` added,
    made unique (`_2`, `_3`, …) within the run."""
    taken = {DETECTIONS_JSON, MANIFEST}
    names = {}
    for input_file in inputs:
        stem = input_file.key.rsplit(".", 1)[0] if "." in input_file.key.rsplit("/", 1)[-1] \
            else input_file.key
        base = stem.replace("/", "_") + "_detections"
        name, number = base, 1
        # A video takes two names (.mp4, .json); an image one (.jpg).
        while {f"{name}.jpg", f"{name}.mp4", f"{name}.json"} & taken:
            number += 1
            name = f"{base}_{number}"
        taken |= {f"{name}.jpg", f"{name}.mp4", f"{name}.json"}
        names[input_file.key] = name
    return names


def _warn_skipped(error):
    tqdm.write(f"WARNING: skipped {error}", file=sys.stderr)
