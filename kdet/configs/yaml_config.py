"""kdet's YAML pipeline configs: the TF OD API pipeline.config tree, written as YAML.

A YAML config holds exactly the fields of a pipeline.config, nested the same way, so it has
the same semantics and goes through the same checks (`kdet.configs.field_reader`):

```yaml
model:
  ssd:
    num_classes: 90
    image_resizer: {fixed_shape_resizer: {height: 300, width: 300}}
    anchor_generator:
      ssd_anchor_generator: {num_layers: 6, aspect_ratios: [1.0, 2.0, 0.5]}
    post_processing: {score_converter: SIGMOID}
train_config:
  batch_size: 24
  data_augmentation_options:
    - random_horizontal_flip: {}
    - ssd_random_crop: {}
train_input_reader:
  tf_record_input_reader: {input_path: "data/train.record"}
```

A repeated field is a list; a message is a mapping (`{}` when empty). Enum values (`SIGMOID`,
`RELU_6`) are plain words; a string may be quoted or not (`type: ssd_mobilenet_v2`: YAML reads
a plain scalar as a string), while in pipeline.config strings are quoted. `to_yaml` writes a parsed
pipeline.config this way (`kdet config convert`), and `parse_yaml` reads it back into the same
`Message` tree, with line and column numbers for error messages.
"""

import json
import math
import re

import yaml

from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Field
from kdet.configs.text_format import Identifier
from kdet.configs.text_format import Message
from kdet.configs.text_format import Word

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INDENT = "  "


def parse_yaml(text, source="<string>"):
    """Reads a YAML pipeline config into the `Message` tree `text_format.parse` gives.

    Args:
        text: str, the YAML document.
        source: str, the file name for error messages.

    Returns:
        The root `Message`.

    Raises:
        ConfigError: `source:line:column: problem` for YAML syntax errors or a document that is
            not a tree of mappings, lists and scalars.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError.at(source, line, column, f"invalid YAML: {problem}") from None
    if root is None:
        return Message(source=source)
    if not isinstance(root, yaml.MappingNode):
        raise _error(source, root, "a YAML config is a mapping of top-level fields")
    return _message(root, source)


def parse_yaml_file(path):
    """`parse_yaml` of a UTF-8 file; a missing file is a `ConfigError` naming it."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    return parse_yaml(text, str(path))


def _error(source, node, problem):
    return ConfigError.at(source, node.start_mark.line + 1, node.start_mark.column + 1, problem)


def _message(node, source):
    message = Message(line=node.start_mark.line + 1, column=node.start_mark.column + 1,
                      source=source)
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or not _IDENTIFIER.match(key.value):
            raise _error(source, key, "field names are plain words like batch_size")
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for item in items:
            message.fields.append(
                Field(key.value, _value(item, source), item.start_mark.line + 1,
                      item.start_mark.column + 1)
            )
    return message


def _value(node, source):
    if isinstance(node, yaml.MappingNode):
        return _message(node, source)
    if isinstance(node, yaml.SequenceNode):
        raise _error(source, node, "a list inside a list; a repeated field is one list")
    tag = node.tag.rsplit(":", 1)[-1]
    if tag == "null":
        raise _error(source, node, "a field needs a value ({} for an empty message)")
    if tag in ("int", "float", "bool"):
        return yaml.safe_load(yaml.serialize(node))
    if node.style is None and _IDENTIFIER.match(node.value):
        return Word(node.value)
    return node.value


def to_yaml(message):
    """Writes a `Message` tree (e.g. a parsed pipeline.config) as a YAML config.

    Args:
        message: the root `Message`.

    Returns:
        str, a YAML document that `parse_yaml` reads back into an equal tree.
    """
    return "".join(_fields_yaml(message, 0)) or "{}\n"


def _fields_yaml(message, depth):
    indent = _INDENT * depth
    for name in message.names():
        values = [field.value for field in message.get(name)]
        if len(values) > 1 and all(not isinstance(value, Message) for value in values):
            yield f"{indent}{name}: [{', '.join(_scalar(value) for value in values)}]\n"
        elif len(values) > 1:
            yield f"{indent}{name}:\n"
            for value in values:
                yield from _list_item_yaml(value, depth + 1)
        elif isinstance(values[0], Message):
            if values[0].fields:
                yield f"{indent}{name}:\n"
                yield from _fields_yaml(values[0], depth + 1)
            else:
                yield f"{indent}{name}: {{}}\n"
        else:
            yield f"{indent}{name}: {_scalar(values[0])}\n"


def _list_item_yaml(value, depth):
    lines = list(_fields_yaml(value, depth + 1)) if isinstance(value, Message) else []
    if not isinstance(value, Message):
        yield f"{_INDENT * depth}- {_scalar(value)}\n"
    elif not lines:
        yield f"{_INDENT * depth}- {{}}\n"
    else:
        # The first field goes on the dash's line, the others under it.
        yield f"{_INDENT * depth}- {lines[0].lstrip()}"
        yield from lines[1:]


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Identifier):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a double-quoted YAML string
    if isinstance(value, float):
        return _float(value)
    return str(value)


def _float(value):
    """A float as YAML 1.1 (PyYAML) reads back as a float: it needs a "." (`1.0e-08`)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    mantissa, _, exponent = repr(value).partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (f"e{exponent}" if exponent else "")
