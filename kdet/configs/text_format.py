"""A schema-free parser for the protobuf text format of TF Object Detection API `pipeline.config`.

The TF OD API stores a training pipeline as a `TrainEvalPipelineConfig` message in protobuf
text format:

```
model {
  ssd {
    num_classes: 90
    image_resizer { fixed_shape_resizer { height: 300 width: 300 } }
  }
}
train_config {
  batch_size: 24
  data_augmentation_options { random_horizontal_flip { } }
}
```

`parse` reads such text without any `.proto` schema into a generic tree: a `Message` holds its
`Field`s in file order (a repeated field appears once per value), and each field's value is a
nested `Message` or a Python scalar (`int`, `float`, `str`, `bool` or an `Identifier` for enum
values). Every node carries its 1-based line and column, so the schema layer that validates
field names and types later can point at the offending spot. Every syntax error is a
`ConfigError` whose message starts with `source:line:column:`.

Supported syntax: `#` comments; `name: scalar`; `name { ... }`, `name: { ... }` and the old
`name < ... >` form; lists `name: [1, 2]` and `name: [{...}, {...}]` (one field per element);
an optional `,` or `;` after each field; extension names `[some.ext]`; decimal, hex (`0x1F`)
and octal (`017`) integers; floats (`1.`, `.5`, `1e-8`, `1.5f`, `inf`, `nan`); single- or
double-quoted strings with C escapes (`\\n`, `\\101`, `\\x41`, `\\u00e9`) where adjacent
literals are concatenated; `true`/`false` (also `True`, `t`, `False`, `f`) and enum identifiers.
"""

import dataclasses
import re
from typing import NamedTuple


class ConfigError(ValueError):
    """A pipeline config that cannot be read: the message is `source:line:column: problem`.

    A `ValueError`, so code that already catches `ValueError` keeps working.
    """

    @classmethod
    def at(cls, source, line, column, problem):
        """Returns a `ConfigError` for `problem` at 1-based `line` and `column` of `source`."""
        return cls(f"{source}:{line}:{column}: {problem}")


class Identifier(str):
    """A bare identifier value such as `SMOOTH_L1` or `RGB`: the name of an enum value."""

    def __repr__(self):
        return f"Identifier({str.__repr__(self)})"


class Word(Identifier):
    """A plain (unquoted) word of a YAML config, e.g. `SIGMOID` or `ssd_mobilenet_v2`.

    YAML reads a plain scalar as a string, so a `Word` is both: the name of an enum value for
    an enum field, and the string itself for a string field (`type: ssd_mobilenet_v2`). A bare
    word of protobuf text format is an `Identifier` only, which string fields refuse, as
    protobuf does.
    """

    def __repr__(self):
        return f"Word({str.__repr__(self)})"


@dataclasses.dataclass(frozen=True)
class Field:
    """One `name: value` or `name { ... }` entry: `value` is a `Message` or a Python scalar.

    `line` and `column` (1-based) locate the field name, or for a list element the element.
    """

    name: str
    value: object
    line: int
    column: int


@dataclasses.dataclass
class Message:
    """A `{ ... }` block (or the whole file): its fields in file order and where it starts.

    `line` and `column` locate the opening brace, 1 and 1 for the root message; `source` names
    the file (or `<string>`) for error messages.
    """

    fields: list[Field] = dataclasses.field(default_factory=list)
    line: int = 1
    column: int = 1
    source: str = "<string>"

    def get(self, name):
        """Returns the list of fields called `name`, in file order (empty if there is none)."""
        return [field for field in self.fields if field.name == name]

    def first(self, name, default=None):
        """Returns the value of the first field called `name`, or `default` if there is none."""
        return next((field.value for field in self.fields if field.name == name), default)

    def names(self):
        """Returns the field names in order of first appearance, each once."""
        return list(dict.fromkeys(field.name for field in self.fields))


class _Token(NamedTuple):
    """A lexical token: `kind` is ident, int, float, string, punct or eof; `text` is as written."""

    kind: str
    text: str
    value: object
    line: int
    column: int


_TOKEN = re.compile(
    r"""(?P<newline>\n)|(?P<space>[ \t\r\f\v]+)|(?P<comment>\#[^\n]*)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>0[xX][0-9A-Fa-f]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[fF]?)
    |(?P<quote>["'])
    |(?P<punct>[{}<>\[\]:,;\-./])""",
    re.VERBOSE,
)
# What may not directly follow a number: `12abc`, `1.2.3` and `0x` are malformed numbers.
_NUMBER_TAIL = re.compile(r"[\w.]+")
_STRING_BODY = {quote: re.compile(rf"(?:[^{quote}\\\n]|\\.)*") for quote in "\"'"}
_ESCAPE = re.compile(
    r"\\(?:(?P<octal>[0-7]{1,3})|x(?P<hex>[0-9A-Fa-f]{1,2})"
    r"|u(?P<u4>[0-9A-Fa-f]{4})|U(?P<u8>[0-9A-Fa-f]{8})|(?P<char>.))"
)
_SIMPLE_ESCAPES = {
    "n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v",
    "\\": b"\\", "'": b"'", '"': b'"', "?": b"?",
}  # fmt: skip
_BOOLEANS = {"true": True, "True": True, "t": True, "false": False, "False": False, "f": False}
_FLOAT_WORDS = {"inf": float("inf"), "infinity": float("inf"), "nan": float("nan")}
_CLOSERS = {"{": "}", "<": ">"}


class _StringError(ValueError):
    """A bad string literal; `args` are the problem's offset in the body (None: the whole
    literal) and the problem.
    """


def _number(text):
    """Returns the int or float the number literal `text` denotes, or None for a bad octal.

    As in protobuf, an integer with a leading zero is octal (`017` is 15), so `09` is invalid.
    """
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if not re.fullmatch("[0-9]+", text):
        return float(text.rstrip("fF"))
    if len(text) > 1 and text[0] == "0":
        return int(text, 8) if re.fullmatch("[0-7]+", text) else None
    return int(text)


def _unescape(body):
    """Returns the text of a string literal's `body` (between the quotes) with escapes decoded.

    Escapes denote bytes, as in protobuf, and the bytes must form UTF-8.

    Raises:
        _StringError: for a bad escape (at its offset in `body`) or bytes that are not UTF-8.
    """
    data, position = bytearray(), 0
    for match in _ESCAPE.finditer(body):
        data += body[position : match.start()].encode()
        position = match.end()
        if match["octal"]:
            if int(match["octal"], 8) > 255:
                raise _StringError(match.start(), f"octal escape '{match[0]}' is above '\\377'")
            data.append(int(match["octal"], 8))
        elif match["hex"]:
            data.append(int(match["hex"], 16))
        elif match["char"] in _SIMPLE_ESCAPES:
            data += _SIMPLE_ESCAPES[match["char"]]
        elif match["char"] is not None:
            raise _StringError(match.start(), f"invalid escape '{match[0]}' in string")
        else:
            code = int(match["u4"] or match["u8"], 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _StringError(match.start(), f"invalid unicode escape '{match[0]}'")
            data += chr(code).encode()
    data += body[position:].encode()
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise _StringError(None, "string escapes do not form valid UTF-8") from None


def _tokenize(text, source):
    """Yields the `_Token`s of `text`, skipping whitespace and comments, and ends with an eof.

    Raises:
        ConfigError: for an unexpected character, a malformed number or a bad string literal.
    """
    line, line_start, position = 1, 0, 0
    while position < len(text):
        column = position - line_start + 1
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConfigError.at(source, line, column, f"unexpected character {text[position]!r}")
        kind, token_text, position = match.lastgroup, match[0], match.end()
        if kind == "newline":
            line, line_start = line + 1, position
        elif kind == "number":
            tail = _NUMBER_TAIL.match(text, position)
            value = None if tail else _number(token_text)
            if value is None:
                bad = token_text + (tail[0] if tail else "")
                raise ConfigError.at(source, line, column, f"invalid number {bad!r}")
            number_kind = "float" if isinstance(value, float) else "int"
            yield _Token(number_kind, token_text, value, line, column)
        elif kind == "quote":
            body = _STRING_BODY[token_text].match(text, position)
            if not text.startswith(token_text, body.end()):
                raise ConfigError.at(source, line, column, "unterminated string")
            position = body.end() + 1
            try:
                value = _unescape(body[0])
            except _StringError as error:
                offset, problem = error.args
                at = column if offset is None else column + 1 + offset
                raise ConfigError.at(source, line, at, problem) from None
            yield _Token("string", text[match.start() : position], value, line, column)
        elif kind in ("ident", "punct"):
            yield _Token(kind, token_text, token_text, line, column)
    yield _Token("eof", "", None, line, position - line_start + 1)


def _describe(token):
    """Returns how an error message names `token`: quoted as written, or `end of file`."""
    return "end of file" if token.kind == "eof" else repr(token.text)


class _Parser:
    """Recursive-descent parser over the tokens of one text, with one token of lookahead."""

    def __init__(self, text, source):
        self._source = source
        self._tokens = _tokenize(text, source)
        self._token = next(self._tokens)

    def _error(self, token, problem):
        """Returns a `ConfigError` for `problem` at `token`."""
        return ConfigError.at(self._source, token.line, token.column, problem)

    def _advance(self):
        """Consumes the current token and returns it (the eof token is never consumed away)."""
        token, self._token = self._token, next(self._tokens, self._token)
        return token

    def _at_punct(self, texts):
        """Returns whether the current token is punctuation among the strings `texts`."""
        return self._token.kind == "punct" and self._token.text in texts

    def _accept(self, *texts):
        """Consumes the current token if it is punctuation among `texts`; returns it or None."""
        return self._advance() if self._at_punct(texts) else None

    def root(self):
        """Returns the root `Message`: all fields up to the end of the text."""
        return Message(self._fields(opener=None), 1, 1, self._source)

    def _fields(self, opener):
        """Returns the fields up to the closer of the `opener` token (up to the end if None)."""
        fields = []
        while True:
            token = self._token
            if token.kind == "eof":
                if opener is None:
                    return fields
                raise self._error(opener, f"{opener.text!r} is never closed (end of file reached)")
            if self._at_punct(("}", ">")):
                if opener is None:
                    raise self._error(token, f"unmatched {token.text!r}")
                if token.text != _CLOSERS[opener.text]:
                    raise self._error(
                        token,
                        f"{token.text!r} does not close the {opener.text!r} opened at "
                        f"{opener.line}:{opener.column}",
                    )
                self._advance()
                return fields
            fields += self._field()
            self._accept(",", ";")

    def _field_name(self):
        """Consumes a field name, an identifier or an extension `[a.b]`, and returns it."""
        token = self._advance()
        if token.kind == "ident":
            return token.text
        if token.kind != "punct" or token.text != "[":
            raise self._error(token, f"expected a field name, found {_describe(token)}")
        parts = []
        while self._token.kind == "ident" or self._at_punct((".", "/")):
            parts.append(self._advance().text)
        if not parts or not self._accept("]"):
            raise self._error(
                self._token, f"expected an extension name and ']', found {_describe(self._token)}"
            )
        return "[" + "".join(parts) + "]"

    def _field(self):
        """Consumes one field and returns its `Field`s: one, or one per element of a list."""
        name_token = self._token
        name = self._field_name()
        colon = self._accept(":")
        bracket = self._accept("[")
        if bracket:
            return self._list(name, bracket, allow_scalars=colon is not None)
        if self._at_punct(_CLOSERS):
            value = self._message()
        elif colon:
            value = self._scalar(f"after ':' for field {name!r}")
        else:
            hint = "" if self._token.kind in ("punct", "eof") else " (scalar values need a ':')"
            raise self._error(
                self._token,
                f"expected ':' or '{{' after field name {name!r}, found "
                f"{_describe(self._token)}{hint}",
            )
        return [Field(name, value, name_token.line, name_token.column)]

    def _message(self):
        """Consumes a `{ ... }` or `< ... >` block and returns its `Message`."""
        opener = self._advance()
        return Message(self._fields(opener), opener.line, opener.column, self._source)

    def _list(self, name, bracket, allow_scalars):
        """Consumes a list after its `bracket` token and returns one `Field` per element.

        Each field is located at its element. Without a ':' before the `[` (`name [{...}]`),
        as in protobuf, the elements must be messages.
        """
        fields = []
        if self._accept("]"):
            return fields
        while True:
            token = self._token
            if token.kind == "eof":
                raise self._error(bracket, "'[' is never closed (end of file reached)")
            if self._at_punct(_CLOSERS):
                value = self._message()
            elif allow_scalars:
                value = self._scalar(f"in the list of field {name!r}")
            else:
                raise self._error(
                    token,
                    f"expected '{{' in the message list of field {name!r}, found "
                    f"{_describe(token)} (a list of scalars needs a ':' before '[')",
                )
            fields.append(Field(name, value, token.line, token.column))
            if self._accept("]"):
                return fields
            if not self._accept(",") and self._token.kind != "eof":
                raise self._error(
                    self._token,
                    f"expected ',' or ']' in the list of field {name!r}, found "
                    f"{_describe(self._token)}",
                )

    def _scalar(self, where):
        """Consumes a scalar value and returns it as int, float, str, bool or `Identifier`.

        `where` ends the error message when no value is found (`after ':' for field 'x'`).
        """
        token = self._advance()
        if token.kind == "punct" and token.text == "-":
            number = self._advance()
            if number.kind in ("int", "float"):
                return -number.value
            if number.kind == "ident" and number.text.lower() in _FLOAT_WORDS:
                return -_FLOAT_WORDS[number.text.lower()]
            raise self._error(number, f"expected a number after '-', found {_describe(number)}")
        if token.kind in ("int", "float"):
            return token.value
        if token.kind == "string":
            parts = [token.value]
            while self._token.kind == "string":
                parts.append(self._advance().value)
            return "".join(parts)
        if token.kind == "ident":
            if token.text in _BOOLEANS:
                return _BOOLEANS[token.text]
            return _FLOAT_WORDS.get(token.text.lower(), Identifier(token.text))
        raise self._error(token, f"expected a value {where}, found {_describe(token)}")


def parse(text, source="<string>"):
    """Parses protobuf text format `text` without a schema and returns the root `Message`.

    Args:
        text: the config text, e.g. the contents of a TF OD API `pipeline.config`.
        source: the name error messages give the text, usually its file path.

    Returns:
        The root `Message` (line 1, column 1); an empty text gives one without fields.

    Raises:
        ConfigError: for any syntax error, as `source:line:column: problem`.

    Example:
    >>> config = parse("train_config { batch_size: 24 }")
    >>> config.first("train_config").first("batch_size")
    24
    """
    return _Parser(text, source).root()


def parse_file(path):
    """Reads a UTF-8 protobuf text format file (e.g. `pipeline.config`) and returns its root.

    Args:
        path: the file path; `str(path)` names it in error messages.

    Returns:
        The root `Message` of the file.

    Raises:
        ConfigError: if the file is missing, unreadable, not UTF-8 or has a syntax error.
    """
    try:
        with open(path, encoding="utf-8-sig") as file:
            text = file.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text ({error.reason} at byte {error.start})"
        raise ConfigError(f"{path}: {problem}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    return parse(text, str(path))
