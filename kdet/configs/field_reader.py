"""Schema-checked reading of the generic `Message` trees that `kdet.configs.text_format` parses.

A builder describes one protobuf message kind as a schema, a dict `{field name: spec}`, and
`read(node, schema)` checks the message against it before the builder looks at any value:

- every field must be in the schema, else a `ConfigError` at the field says
  `'model.ssd.num_clases' is not a field kdet supports (did you mean 'num_classes'?)`;
- a field that is not `Repeated` may appear once;
- values must have the spec's type (`Int`, `Float`, `Bool`, `String`, `Enum`, `SubMessage`);
- `required` fields must be present, else the error points at the enclosing message;
- `Fixed` fields restate a behaviour of kdet that cannot be changed: they are accepted only with
  kdet's value, and an absent field whose TF OD API default differs from it is an error too;
- `Switch` fields are implementation choices of the TF OD API (TPU-friendly ops, deprecated
  flags) whose two values compute the same thing; either value is accepted.

Absent fields read as their TF OD API default, so a config means what it means to the TF OD
API. Every error is a `ConfigError` whose message starts with `source:line:column:`.

Example:
```python
node = Node(parse("height: 320 width: 320"), "model.ssd.image_resizer.fixed_shape_resizer")
fields = read(node, {"height": Int(default=300), "width": Int(default=300)})
fields["height"], fields["width"]  # 320, 320
```
"""

import dataclasses
import difflib
import math

from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Identifier
from kdet.configs.text_format import Message
from kdet.configs.text_format import Word

# The default of a spec without one: the field then reads as None.
_NO_DEFAULT = object()


@dataclasses.dataclass(frozen=True)
class Node:
    """A message of a config together with its dotted path, e.g. `model.ssd.loss`."""

    message: Message
    path: str

    @property
    def name(self):
        """The last component of the path: the name of the field holding this message."""
        return self.path.rsplit(".", 1)[-1]

    def error(self, problem, field=None):
        """Returns a `ConfigError` for `problem` at `field`, or at this message's `{`."""
        located = field or self.message
        return ConfigError.at(self.message.source, located.line, located.column, problem)


def show(value):
    """Writes a value the way a pipeline.config does: `true`, `RELU_6`, `'text'`, `0.03`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Identifier):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Message):
        return "a message { ... }"
    return repr(value)


def _describe(value):
    """How a type error names the value it got: `the string '3'`, `a message { ... }`."""
    if isinstance(value, Message):
        return "a message { ... }"
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if isinstance(value, Identifier):
        return f"the name {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"the number {value!r}"


def same_value(a, b):
    """Whether two config values are equal, numbers up to float32 rounding."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return not isinstance(b, bool) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    return a == b


class _WrongType(Exception):
    """Raised by `Spec.convert` for a value of another type."""


class Spec:
    """How one field of a message is read: its type, its TF OD API default, and checks.

    Args:
        default: the value of the field when it is absent (the TF OD API default).
            Defaults to none: an absent field reads as None.
        required: bool. An absent field is a `ConfigError` at the enclosing message.
    """

    #: What a type error says the field expects, e.g. "an integer".
    expected = ""
    #: Whether the field may appear several times (its value is then a list).
    repeated = False

    def __init__(self, default=_NO_DEFAULT, required=False):
        self.default = None if default is _NO_DEFAULT else default
        self.has_default = default is not _NO_DEFAULT
        self.required = required

    def convert(self, value):
        """Returns the value as the field's Python type; raises `_WrongType` if it is not."""
        raise NotImplementedError

    def problem(self, value):
        """Returns why kdet cannot take `value` (e.g. `"but kdet uses 4"`), or None."""
        return None

    def read_value(self, value):
        """Returns what a checked value reads as (the value itself but for `Enum`)."""
        return value


class Int(Spec):
    """An integer field; `minimum`, if given, is its smallest allowed value."""

    expected = "an integer"

    def __init__(self, default=_NO_DEFAULT, required=False, minimum=None):
        super().__init__(default, required)
        self.minimum = minimum

    def convert(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _WrongType
        return value

    def problem(self, value):
        if self.minimum is not None and value < self.minimum:
            return f"but it must be at least {self.minimum}"
        return None


class Float(Spec):
    """A floating point field; integer literals are accepted, as protobuf does."""

    expected = "a number"

    def convert(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _WrongType
        return float(value)


class Bool(Spec):
    """A boolean field: `true` / `false` (and `1` / `0`, as protobuf accepts)."""

    expected = "true or false"

    def convert(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _WrongType


class String(Spec):
    """A string field: quoted, or a plain word of a YAML config (a YAML plain scalar is a
    string); a bare word of protobuf text format is refused, as protobuf refuses it."""

    expected = "a quoted string"

    def convert(self, value):
        if isinstance(value, Word):
            return str(value)
        if isinstance(value, Identifier) or not isinstance(value, str):
            raise _WrongType
        return value


class Enum(Spec):
    """An enum field, written as a bare name; reads as `choices[name]`.

    Args:
        choices: dict from the enum names kdet supports to the values they read as, or a
            sequence of names that read as themselves.
        default: the TF OD API default name, which may be one kdet does not support.
        unsupported: dict from other enum names of the TF OD API to why kdet does not support
            them; a field (or a default) with one of them is a `ConfigError`.
        required: see `Spec`.
    """

    def __init__(self, choices, default=_NO_DEFAULT, unsupported=None, required=False):
        if default is not _NO_DEFAULT:
            default = Identifier(default)
        super().__init__(default, required)
        if not isinstance(choices, dict):
            choices = {name: Identifier(name) for name in choices}
        self.choices = dict(choices)
        self.unsupported = dict(unsupported or {})
        self.expected = "one of " + ", ".join([*self.choices, *self.unsupported])

    def convert(self, value):
        if isinstance(value, Identifier) and (value in self.choices or value in self.unsupported):
            return value
        raise _WrongType

    def problem(self, value):
        if value in self.unsupported:
            return f"but kdet does not support it: {self.unsupported[value]}"
        return None

    def read_value(self, value):
        return self.choices.get(value, value)


class SubMessage(Spec):
    """A message field `name { ... }`; reads as a `Node`, or None when absent."""

    expected = "a message: name { ... }"

    def convert(self, value):
        if not isinstance(value, Message):
            raise _WrongType
        return value


class Repeated(Spec):
    """A repeated scalar field (`aspect_ratios: 1.0 aspect_ratios: 2.0`, or `[1.0, 2.0]`).

    Reads as a list of `item`'s values, empty when absent (unless `required`).
    """

    repeated = True

    def __init__(self, item, required=False):
        super().__init__(default=(), required=required)
        self.item = item
        self.expected = item.expected

    def convert(self, value):
        return self.item.convert(value)


class Fixed(Spec):
    """A field that restates what kdet always does: accepted only with kdet's value.

    Args:
        spec: the field's type and TF OD API default.
        kdet_value: the only value accepted.
        reason: optional text explaining why nothing else is possible.
    """

    def __init__(self, spec, kdet_value, reason=None):
        super().__init__(spec.default if spec.has_default else _NO_DEFAULT, spec.required)
        self.spec = spec
        self.kdet_value = Identifier(kdet_value) if isinstance(spec, Enum) else kdet_value
        self.reason = reason
        self.expected = spec.expected

    def convert(self, value):
        return self.spec.convert(value)

    def problem(self, value):
        if same_value(value, self.kdet_value):
            return None
        reason = f": {self.reason}" if self.reason else ""
        return f"but kdet uses {show(self.kdet_value)}{reason}"

    def read_value(self, value):
        return self.spec.read_value(value)


class Switch(Bool):
    """An implementation switch of the TF OD API (e.g. `use_matmul_crop_and_resize`): both
    values compute the same thing, so either is accepted. Reads as a bool, `default` (the
    TF OD API default) when absent.
    """

    def __init__(self, default=False):
        super().__init__(default)


class Fields:
    """The checked fields of one message: `fields[name]` is a value, default applied."""

    def __init__(self, node, schema, values, located):
        self.node = node
        self.schema = schema
        self._values = values
        self._located = located

    def __getitem__(self, name):
        """The field's value, or its default; a `SubMessage` reads as a `Node` or None."""
        spec = self.schema[name]
        if name not in self._values:
            return spec.read_value(spec.default) if spec.has_default else spec.default
        value = self._values[name]
        if isinstance(spec, SubMessage):
            return Node(value, self.path(name))
        if spec.repeated:
            return [spec.read_value(item) for item in value]
        return spec.read_value(value)

    def has(self, name):
        """Whether the message sets the field."""
        return name in self._values

    def path(self, name):
        """The dotted path of a field, e.g. `model.ssd.num_classes`."""
        return f"{self.node.path}.{name}"

    def error(self, name, problem):
        """Returns a `ConfigError` at the field `name` (at the message if it is absent)."""
        return self.node.error(problem, self._located.get(name))


def read(node, schema):
    """Checks the message of `node` against `schema` and returns its `Fields`.

    Args:
        node: the `Node` to read.
        schema: dict `{field name: Spec}` of every field kdet supports in this message.

    Returns:
        The `Fields` of the message.

    Raises:
        ConfigError: for an unknown field, a field set twice, a value of the wrong type, a
            missing required field, or a value (or default) kdet does not support.
    """
    values, located = {}, {}
    for field in node.message.fields:
        spec = schema.get(field.name)
        if spec is None:
            raise node.error(_unknown_field(node.path, field.name, schema), field)
        if field.name in located and not spec.repeated:
            first = located[field.name]
            raise node.error(
                f"'{node.path}.{field.name}' is set twice (first at {first.line}:"
                f"{first.column}); it takes a single value",
                field,
            )
        try:
            value = spec.convert(field.value)
        except _WrongType:
            raise node.error(
                f"'{node.path}.{field.name}' expects {spec.expected}, got "
                f"{_describe(field.value)}",
                field,
            ) from None
        problem = spec.problem(value)
        if problem:
            raise node.error(f"'{node.path}.{field.name}' is {show(value)}, {problem}", field)
        if spec.repeated:
            values.setdefault(field.name, []).append(value)
        else:
            values[field.name] = value
        located.setdefault(field.name, field)
    for name, spec in schema.items():
        if name in values:
            continue
        if spec.required:
            raise node.error(f"'{node.path}' is missing the required field '{name}'")
        problem = spec.problem(spec.default) if spec.has_default else None
        if problem:
            raise node.error(
                f"'{node.path}' does not set '{name}' (TF OD API default "
                f"{show(spec.default)}), {problem}"
            )
    return Fields(node, schema, values, located)


def read_one_of(node, names):
    """Reads a message that must hold exactly one message field among `names` (a oneof).

    Args:
        node: the `Node` of the wrapper message, e.g. `model.ssd.image_resizer`.
        names: the field names kdet supports in it, e.g. `("fixed_shape_resizer", ...)`.

    Returns:
        The `Node` of the field that is set; its `name` says which.

    Raises:
        ConfigError: for an unknown field, a non-message value, none or several set.
    """
    fields = read(node, {name: SubMessage() for name in names})
    chosen = node.message.fields
    if not chosen:
        options = ", ".join(f"'{name}'" for name in names)
        raise node.error(f"'{node.path}' needs one of {options}")
    if len(chosen) > 1:
        raise node.error(
            f"'{node.path}' sets both '{chosen[0].name}' and '{chosen[1].name}'; "
            "only one of them is allowed",
            chosen[1],
        )
    return fields[chosen[0].name]


def _unknown_field(path, name, schema):
    """The message for a field kdet does not know, with a close known name if there is one."""
    close = difflib.get_close_matches(name, list(schema), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"'{path}.{name}' is not a field kdet supports{hint}"
