"""Label maps in the TF Object Detection API `StringIntLabelMap` text format (`.pbtxt`).

A label map file lists one `item` per class:

```
item {
  id: 1
  name: 'cat'
  display_name: 'Cat'
}
```

kdet reads the fields it uses (`id`, `name`, `display_name`, and the `keypoints { id label }`
of keypoint classes, see `read_label_map_keypoints`), skips the other fields of the TF OD API
`StringIntLabelMapItem` message (`frequency`, `instance_count`, `ancestor_ids`,
`descendant_ids`) and rejects anything else with the file and line. In Python a label map is a
dict `{id: name}`; ids start at 1 because id 0 is the background class.

A keypoint class lists its keypoints, `id` being the keypoint's index in the records' per-object
keypoint lists (`image/object/keypoint/x|y`):

```
item {
  id: 1
  name: 'person'
  keypoints { id: 0 label: 'nose' }
  keypoints { id: 1 label: 'left_eye' }
}
```
"""

import os
import re
from typing import NamedTuple

from kdet.data.errors import DataError
from kdet.utils.verified_files import fsync_file
from kdet.utils.verified_files import fsync_folder

# Fields of the TF OD API `StringIntLabelMapItem` proto that kdet does not use: skipped on read.
_IGNORED_FIELDS = ("frequency", "instance_count", "ancestor_ids", "descendant_ids")
_FIELD_TYPES = {"id": "number", "name": "string", "display_name": "string"}
_KEYPOINT_FIELD_TYPES = {"id": "number", "label": "string"}

_TOKEN = re.compile(
    r"""(?P<newline>\n)|(?P<space>[ \t\r\f\v]+)|(?P<comment>\#[^\n]*)
    |(?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
    |(?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+))
    |(?P<ident>[A-Za-z_]\w*)
    |(?P<punct>[{}:\[\],])""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "'": "'", '"': '"', "\\": "\\"}


class LabelMapItem(NamedTuple):
    """One `item` of a label map: `id` (≥ 1), `name` and optional `display_name`."""

    id: int
    name: str
    display_name: str | None = None


class KeypointItem(NamedTuple):
    """One `keypoints { id label }` of a label map item: `id` (≥ 0, the keypoint's index in
    the records' per-object keypoints) and `label` (e.g. `"nose"`)."""

    id: int
    label: str


def _tokenize(text, path):
    tokens, line, position = [], 1, 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise DataError(f"{path}, line {line}: unexpected character {text[position]!r}")
        kind, value = match.lastgroup, match.group()
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            tokens.append((kind, value, line))
        position = match.end()
    return tokens


def _unquote(token):
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), token[1:-1])


class _Parser:
    """Recursive-descent parser for the subset of protobuf text format label maps use."""

    def __init__(self, text, path):
        self.tokens = _tokenize(text, path)
        self.position = 0
        self.path = path

    def error(self, line, message):
        return DataError(f"{self.path}, line {line}: {message}")

    def next(self, expected):
        if self.position == len(self.tokens):
            last_line = self.tokens[-1][2] if self.tokens else 1
            raise self.error(last_line, f"file ends early; expected {expected}")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def accept(self, value):
        if self.position < len(self.tokens) and self.tokens[self.position][1] == value:
            self.position += 1
            return True
        return False

    def items(self):
        items = []
        while self.position < len(self.tokens):
            kind, value, line = self.next("'item {'")
            if value != "item":
                raise self.error(line, f"expected 'item {{', got {value!r}")
            self.accept(":")
            _, brace, brace_line = self.next("'{' after 'item'")
            if brace != "{":
                raise self.error(brace_line, f"expected '{{' after 'item', got {brace!r}")
            items.append(self.item(line))
        return items

    def item(self, item_line):
        fields, keypoints = {}, []
        while True:
            kind, value, line = self.next(f"'}}' closing the item opened at line {item_line}")
            if value == "}":
                break
            if kind != "ident":
                raise self.error(line, f"expected a field name or '}}', got {value!r}")
            if value in _IGNORED_FIELDS:
                self.skip_value()
            elif value == "keypoints":
                keypoints.append(self.keypoint(line, keypoints))
            elif value in _FIELD_TYPES:
                if value in fields:
                    raise self.error(line, f"field '{value}' is set twice in one item")
                fields[value] = self.scalar(value, line)
            else:
                raise self.error(
                    line,
                    f"unknown label map field '{value}'; expected id, name, display_name, "
                    f"keypoints (or the TF OD API fields {', '.join(_IGNORED_FIELDS)}, which "
                    "are skipped)",
                )
        return (*self.build_item(fields, item_line), tuple(keypoints))

    def keypoint(self, line, previous):
        """One `keypoints { id: N label: '…' }` message (the `:` before `{` is optional)."""
        self.accept(":")
        _, brace, brace_line = self.next("'{' after 'keypoints'")
        if brace != "{":
            raise self.error(brace_line, f"expected '{{' after 'keypoints', got {brace!r}")
        fields = {}
        while True:
            _, value, field_line = self.next(f"'}}' closing the keypoints opened at line {line}")
            if value == "}":
                break
            if value not in _KEYPOINT_FIELD_TYPES:
                raise self.error(
                    field_line, f"unknown keypoints field {value!r}; expected id and label"
                )
            if value in fields:
                raise self.error(field_line, f"field '{value}' is set twice in one keypoints")
            fields[value] = self.scalar(value, field_line, _KEYPOINT_FIELD_TYPES)
        if "id" not in fields or fields["id"] < 0:
            raise self.error(
                line, f"keypoints needs an 'id' >= 0 (its index in the records), got {fields}"
            )
        if not fields.get("label"):
            raise self.error(line, "keypoints has no 'label' (or an empty one)")
        for other in previous:
            if fields["id"] == other.id or fields["label"] == other.label:
                raise self.error(
                    line,
                    f"keypoints id {fields['id']} label {fields['label']!r} repeats the id or "
                    f"label of keypoints id {other.id} label {other.label!r} of this item",
                )
        return KeypointItem(fields["id"], fields["label"])

    def scalar(self, field, field_line, types=None):
        _, colon, line = self.next(f"':' after '{field}'")
        if colon != ":":
            raise self.error(line, f"expected ':' after '{field}', got {colon!r}")
        kind, value, line = self.next(f"a value for '{field}'")
        if (types or _FIELD_TYPES)[field] == "string":
            if kind != "string":
                raise self.error(line, f"'{field}' must be a quoted string, got {value!r}")
            return _unquote(value)
        if kind != "number" or not re.fullmatch(r"[-+]?\d+", value):
            raise self.error(line, f"'{field}' must be an integer, got {value!r}")
        return int(value)

    def skip_value(self):
        """Skips the value of an ignored field: a scalar, a `[...]` list or a `{...}` message."""
        self.accept(":")
        _, value, line = self.next("a field value")
        closers = {"{": "}", "[": "]"}
        if value not in closers:
            return
        depth = 1
        while depth:
            _, token, _ = self.next(f"{closers[value]!r} closing the value opened at line {line}")
            depth += token == value
            depth -= token == closers[value]

    def build_item(self, fields, line):
        if "id" not in fields:
            raise self.error(line, "item has no 'id'")
        if not fields.get("name"):
            raise self.error(line, "item has no 'name' (or an empty one)")
        if fields["id"] < 1:
            raise self.error(
                line,
                f"item id {fields['id']} is invalid: ids must be >= 1 "
                "(id 0 is reserved for the background class)",
            )
        return LabelMapItem(fields["id"], fields["name"], fields.get("display_name")), line


def _read_items(path):
    """`[(LabelMapItem, keypoints tuple)]` of a label map file, checked (see
    `read_label_map_items`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"label map file {path} does not exist")
    with open(path, encoding="utf-8") as file:
        parsed = _Parser(file.read(), path).items()
    if not parsed:
        raise DataError(f"label map file {path} has no items; expected 'item {{ … }}' blocks")
    seen_ids, seen_names = {}, {}
    for item, line, _ in parsed:
        if item.id in seen_ids:
            raise DataError(
                f"{path}, line {line}: id {item.id} is already used at line {seen_ids[item.id]}"
            )
        if item.name in seen_names:
            raise DataError(
                f"{path}, line {line}: name {item.name!r} is already used at line "
                f"{seen_names[item.name]}"
            )
        seen_ids[item.id] = seen_names[item.name] = line
    return [(item, keypoints) for item, _, keypoints in parsed]


def read_label_map_items(path):
    """Reads a TF OD API `.pbtxt` label map with all its kdet-relevant fields.

    Args:
        path: str or path-like. The label map file.

    Returns:
        A list of `LabelMapItem(id, name, display_name)` in file order (the keypoints of
        keypoint classes: `read_label_map_keypoints`).

    Raises:
        DataError: if the file is missing, not in the label map text format, has an unknown
            field, an id < 1, a missing or empty name, or a repeated id or name; the message
            names the file and line.

    Example:
    >>> items = read_label_map_items("pet_label_map.pbtxt")
    >>> items[0]
    LabelMapItem(id=1, name='Abyssinian', display_name=None)
    """
    return [item for item, _ in _read_items(path)]


def read_label_map_keypoints(path):
    """Reads the keypoints of the keypoint classes of a TF OD API `.pbtxt` label map.

    Args:
        path: str or path-like. The label map file.

    Returns:
        dict `{class id: (KeypointItem(id, label), …)}` for the items that list `keypoints`,
        each class's keypoints in file order (the order the TF OD API's CenterNet takes them
        in for its `keypoint_class_name`).

    Raises:
        DataError: see `read_label_map_items`; also for a `keypoints` without an id >= 0 or a
            label, or one repeating an id or label of its item.

    Example:
    >>> keypoints = read_label_map_keypoints("person_keypoints_label_map.pbtxt")
    >>> keypoints[1][:2]
    (KeypointItem(id=0, label='nose'), KeypointItem(id=1, label='left_eye'))
    >>> ids, labels = zip(*keypoints[1])
    """
    return {item.id: keypoints for item, keypoints in _read_items(path) if keypoints}


def num_keypoints_of(keypoints):
    """The keypoints per object that records of a label map's keypoint classes hold: the
    largest keypoint id + 1 (0 without keypoint classes).

    Args:
        keypoints: dict `{class id: (KeypointItem, …)}` from `read_label_map_keypoints`.
    """
    return max((point.id + 1 for points in keypoints.values() for point in points), default=0)


def read_label_map(path):
    """Reads a TF OD API `.pbtxt` label map as a dict `{id: name}` sorted by id.

    Args:
        path: str or path-like. The label map file.

    Returns:
        dict `{id: name}`, ids ≥ 1.

    Raises:
        DataError: see `read_label_map_items`.

    Example:
    >>> read_label_map("label_map.pbtxt")
    {1: 'Alive', 2: 'Dead', 3: 'Tree'}
    """
    return {item.id: item.name for item in sorted(read_label_map_items(path))}


def validate_label_map(label_map, source="label map"):
    """Checks a label map dict and returns it with plain `int` ids, sorted by id.

    Args:
        label_map: dict `{id: name}`.
        source: str. What to call the label map in error messages.

    Returns:
        dict `{id: name}` sorted by id.

    Raises:
        DataError: if an id is not an integer ≥ 1, a name is not a non-empty string, or two ids
            share a name.
    """
    if not isinstance(label_map, dict):
        raise DataError(f"{source} must be a dict {{id: name}}, got {type(label_map).__name__}")
    checked = {}
    for label_id, name in label_map.items():
        if isinstance(label_id, bool) or not hasattr(label_id, "__index__") or label_id < 1:
            raise DataError(
                f"{source}: id {label_id!r} is invalid; ids must be integers >= 1 "
                "(id 0 is reserved for the background class)"
            )
        if not isinstance(name, str) or not name:
            raise DataError(f"{source}: id {label_id} has name {name!r}; expected a non-empty str")
        checked[int(label_id)] = name
    names = list(checked.values())
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{source}: names {duplicates} are used by more than one id")
    return dict(sorted(checked.items()))


def _quote(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _checked_keypoints(keypoints, label_map):
    """`{class id: [KeypointItem]}` from `{class id: labels or (id, label) pairs}`."""
    unknown = sorted(set(keypoints) - set(label_map))
    if unknown:
        raise DataError(f"keypoints has class ids {unknown} that are not in the label map")
    checked = {}
    for class_id, points in keypoints.items():
        items = [
            KeypointItem(index, point) if isinstance(point, str) else KeypointItem(*point)
            for index, point in enumerate(points)
        ]
        ids, labels = [item.id for item in items], [item.label for item in items]
        if (
            any(not isinstance(i, int) or i < 0 for i in ids)
            or any(not isinstance(label, str) or not label for label in labels)
            or len(set(ids)) < len(ids)
            or len(set(labels)) < len(labels)
        ):
            raise DataError(
                f"keypoints of class {class_id}: {items} must have distinct ids >= 0 and "
                "distinct non-empty labels"
            )
        checked[class_id] = items
    return checked


def format_label_map(label_map, display_names=None, keypoints=None):
    """Formats a label map dict as TF OD API `.pbtxt` text (items sorted by id).

    Args:
        label_map: dict `{id: name}`, ids ≥ 1.
        display_names: optional dict `{id: display_name}` for some or all ids.
        keypoints: optional dict `{id: keypoints}` for the keypoint classes, each a list of
            labels (ids 0, 1, … in order) or of `(id, label)` pairs / `KeypointItem`s.

    Returns:
        str. The label map text.
    """
    label_map = validate_label_map(label_map)
    display_names = display_names or {}
    unknown = sorted(set(display_names) - set(label_map))
    if unknown:
        raise DataError(f"display_names has ids {unknown} that are not in the label map")
    keypoints = _checked_keypoints(keypoints or {}, label_map)
    blocks = []
    for label_id, name in label_map.items():
        lines = [f"  id: {label_id}", f"  name: {_quote(name)}"]
        if display_names.get(label_id) is not None:
            lines.append(f"  display_name: {_quote(display_names[label_id])}")
        lines += [
            f"  keypoints {{ id: {point.id} label: {_quote(point.label)} }}"
            for point in keypoints.get(label_id, ())
        ]
        blocks.append("item {\n" + "\n".join(lines) + "\n}\n")
    return "\n".join(blocks)


def write_label_map(label_map, path, display_names=None, keypoints=None):
    """Writes a label map dict as a TF OD API `.pbtxt` file, atomically.

    The text goes to a temporary file in the same folder that is renamed over `path` at the end,
    so readers never see a half-written label map.

    Args:
        label_map: dict `{id: name}`, ids ≥ 1.
        path: str or path-like. The output file; its folder is created if needed.
        display_names: optional dict `{id: display_name}`.
        keypoints: optional dict `{id: keypoint labels or (id, label) pairs}` of keypoint
            classes, written as `keypoints { id label }` (see `format_label_map`).

    Returns:
        str. `path`.

    Example:
    >>> write_label_map({1: "cat", 2: "dog"}, "label_map.pbtxt", display_names={1: "Cat"})
    'label_map.pbtxt'
    >>> write_label_map({1: "person"}, "pose.pbtxt", keypoints={1: ["nose", "left_eye"]})
    'pose.pbtxt'
    """
    path = os.fspath(path)
    text = format_label_map(label_map, display_names, keypoints)
    folder, base = os.path.split(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    temp_path = os.path.join(folder, f".{base}.tmp-{os.getpid()}")
    try:
        with open(temp_path, "w", encoding="utf-8") as file:
            file.write(text)
        fsync_file(temp_path)
        os.replace(temp_path, path)
        fsync_folder(folder or ".")
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)
    return path


def name_to_id(label_map):
    """Inverts a label map: `{id: name}` → `{name: id}`."""
    return {name: label_id for label_id, name in label_map.items()}


def create_categories(label_map):
    """Returns COCO-style categories `[{"id": id, "name": name}, …]` sorted by id.

    This is what pycocotools and the TF OD API evaluators take.
    """
    return [{"id": label_id, "name": name} for label_id, name in sorted(label_map.items())]


def label_map_from_names(names):
    """Builds a label map from class names: sorted unique names get ids 1..K.

    Example:
    >>> label_map_from_names(["Tree", "Dead", "Alive", "Dead"])
    {1: 'Alive', 2: 'Dead', 3: 'Tree'}
    """
    return {label_id: name for label_id, name in enumerate(sorted(set(names)), start=1)}
