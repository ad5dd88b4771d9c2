"""What a dataset conversion wrote, skipped and noticed."""

import dataclasses

# Longer lists of skipped images or notes are cut in the printed summary (all stay in the fields).
_MAX_LISTED = 20


@dataclasses.dataclass
class ConversionSummary:
    """The result of `convert_voc`, `convert_coco` or `convert_csv`.

    `str(summary)` (or `summary.format()`) gives a readable report with a per-class table.

    Args:
        num_images: int. Images written.
        boxes_per_class: dict `{class name: number of boxes written}`.
        skipped: list of `(source, reason)` for the images left out (`on_error="skip"`); the
            reason is the full error message.
        notes: list of `(source, message)` for things fixed or noticed on the way that are not
            errors: an image found under another extension, boxes clipped by at most 1 px, an
            EXIF orientation TensorFlow ignores, temporary files of killed runs removed.
        output_paths: list of str. The TFRecord files written.
        label_map_path: str or None. The label map that goes with the records: the one given,
            or the one derived from the data and written next to the output; None when the label
            map was given as a dict or no class was seen.
        label_map: dict `{id: name}` used for the records.

    Example:
    >>> summary = kdet.data.convert_voc("annotations/", "out/train.record")
    >>> print(summary)
    """

    num_images: int = 0
    boxes_per_class: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    output_paths: list = dataclasses.field(default_factory=list)
    label_map_path: str | None = None
    label_map: dict = dataclasses.field(default_factory=dict)

    @property
    def num_boxes(self):
        """Total number of boxes written."""
        return sum(self.boxes_per_class.values())

    def format(self):
        """Returns the summary as a multi-line report."""
        paths = self.output_paths
        where = paths[0] if len(paths) == 1 else f"{paths[0]} … {paths[-1]}" if paths else "-"
        lines = [
            f"Wrote {self.num_images} images with {self.num_boxes} boxes to "
            f"{len(paths)} file(s): {where}",
            f"Label map: {self._label_map_text()}",
        ]
        names = list(self.label_map.values()) + sorted(
            set(self.boxes_per_class) - set(self.label_map.values())
        )
        if names:
            name_ids = {name: label_id for label_id, name in self.label_map.items()}
            width = max(len("class"), *(len(name) for name in names))
            lines.append(f"  {'id':>4}  {'class':<{width}}  {'boxes':>7}")
            lines += [
                f"  {name_ids.get(name, '-'):>4}  {name:<{width}}  "
                f"{self.boxes_per_class.get(name, 0):>7}"
                for name in names
            ]
        for title, entries in (("Skipped", self.skipped), ("Notes", self.notes)):
            if entries:
                lines.append(f"{title} ({len(entries)}):")
                lines += [f"  - {message}" for _, message in entries[:_MAX_LISTED]]
                if len(entries) > _MAX_LISTED:
                    lines.append(f"  … and {len(entries) - _MAX_LISTED} more")
        return "\n".join(lines)

    def _label_map_text(self):
        if self.label_map_path:
            return self.label_map_path
        # Without a path the label map was given as a dict, or none was given and no box has
        # a class to derive one from (then the label map is empty).
        return "(given as a dict)" if self.label_map else "none (no box has a class)"

    def __str__(self):
        return self.format()
