"""Writes `docs/api.md`, kdet's API reference, from the docstrings of its public names.

The public modules are `kdet`, the subpackages it exposes (`kdet._SUBPACKAGES`) and every module
a public module lists in its `__all__` (e.g. `kdet.data.augmentation`). A module's public names
are its `__all__`; without one, its non-underscore classes, functions and constants defined in
kdet (third-party names such as `np` or `keras` are left out). Each name gets its kind, its
signature, the first paragraph of its docstring (for a constant: the comment above its
assignment) and, for a class, the public methods and properties the class itself defines.

Usage (from the repository root):
    python docs/make_api_reference.py           # rewrites docs/api.md
    python docs/make_api_reference.py --check   # exits 1, with a diff, if docs/api.md is stale
"""

import argparse
import difflib
import importlib
import inspect
import os
import pathlib
import re
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
API_PATH = REPO_ROOT / "docs" / "api.md"
REGENERATE_COMMAND = "python docs/make_api_reference.py"
# Signatures longer than this are wrapped, their parameters on indented lines.
_MAX_SIGNATURE_WIDTH = 100
# Constant values whose repr is longer than this are summarized by type and length.
_MAX_VALUE_WIDTH = 80
_MAX_DIFF_LINES = 40
_KIND_TITLES = {
    "module": "Modules",
    "class": "Classes",
    "function": "Functions",
    "constant": "Constants",
}


def public_modules():
    """Returns the public kdet modules, `kdet` first, each followed by its public submodules."""
    modules = []
    pending = [importlib.import_module("kdet")]
    while pending:
        module = pending.pop(0)
        modules.append(module)
        pending[:0] = _public_submodules(module)
    return modules


def _public_submodules(module):
    """The modules `module` exports: its lazy `_SUBPACKAGES` (`kdet`) and modules in `__all__`."""
    names = [*getattr(module, "_SUBPACKAGES", ()), *getattr(module, "__all__", ())]
    submodules = [getattr(module, name) for name in names]
    return [submodule for submodule in submodules if inspect.ismodule(submodule)]


def public_names(module):
    """Returns `{name: object}`, sorted by name, of the classes, functions and constants `module`
    exports (submodules are sections of their own, not names).

    Its `__all__` when it has one, else its non-underscore names that kdet defines: classes and
    functions whose `__module__` is in kdet, constants assigned at top level in a kdet module.
    """
    exported = getattr(module, "__all__", None)
    if exported is None:
        exported = [
            name
            for name in dir(module)
            if not name.startswith("_") and _defined_in_kdet(name, getattr(module, name))
        ]
    names = {name: getattr(module, name) for name in sorted(exported)}
    return {name: value for name, value in names.items() if not inspect.ismodule(value)}


def _defined_in_kdet(name, value):
    kind = _kind(value)
    if kind == "module":
        return False
    if kind == "constant":
        return _constant_assignment(name, value) is not None
    return _in_kdet(value)


def _in_kdet(value):
    return (getattr(value, "__module__", None) or "").split(".")[0] == "kdet"


def _kind(value):
    if inspect.ismodule(value):
        return "module"
    if inspect.isclass(value):
        return "class"
    if callable(value):
        return "function"
    return "constant"


def _constant_assignment(name, value):
    """`(source lines, index of the line)` of the top-level `name = value` in a kdet module.

    Returns None when no kdet module assigns it (a constant imported from another library).
    """
    assignment = re.compile(rf"^{re.escape(name)}\s*(:[^=]*)?=", re.MULTILINE)
    for module_name, module in sorted(sys.modules.items()):
        in_kdet = module_name.split(".")[0] == "kdet" and inspect.ismodule(module)
        if not in_kdet or vars(module).get(name) is not value:
            continue
        source = inspect.getsource(module)
        match = assignment.search(source)
        if match:
            return source.splitlines(), source.count("\n", 0, match.start())
    return None


def _constant_comment(name, value):
    """The `#` (or `#:`) comment lines right above the top-level assignment of `name`."""
    found = _constant_assignment(name, value)
    if found is None:
        return ""
    lines, index = found
    comment = []
    while index > 0 and lines[index - 1].startswith("#"):
        index -= 1
        comment.insert(0, lines[index].lstrip("#:").strip())
    return "\n".join(comment)


def docstring(value, name):
    """The documentation of a public name: its own docstring, or a constant's comment.

    Returns "" when there is none. A class's docstring is not inherited, and the docstrings
    that `namedtuple` and `dataclass` write for undocumented classes do not count.
    """
    if _kind(value) == "constant":
        return _constant_comment(name, value)
    doc = inspect.cleandoc(value.__doc__ or "")
    if inspect.isclass(value) and doc.startswith(f"{value.__name__}("):
        return ""
    return doc


def _first_paragraph(doc):
    return doc.split("\n\n")[0].strip()


def _summary_line(doc):
    return " ".join(_first_paragraph(doc).split())


def missing_docstrings():
    """Returns the qualified names of the documented public names that lack a docstring."""
    return [
        qualified
        for qualified, (value, name) in _documented_names().items()
        if not docstring(value, name)
    ]


def _documented_names():
    """`{qualified name: (object, name)}` in document order, one entry per object.

    An object several modules export (`kdet.SSD` is `kdet.models.SSD`) is documented once,
    under the module with the longest dotted name: the one closest to where it is defined.
    """
    exports = [(module, public_names(module)) for module in public_modules()]
    homes = {}
    for module, names in exports:
        for name, value in names.items():
            home = homes.setdefault(_identity(name, value), module)
            if len(module.__name__) > len(home.__name__):
                homes[_identity(name, value)] = module
    return {
        f"{module.__name__}.{name}": (value, name)
        for module, names in exports
        for name, value in names.items()
        if homes[_identity(name, value)] is module
    }


def _identity(name, value):
    # Constants such as small ints are shared objects, so the name is part of the identity.
    return (name, id(value))


def render():
    """Returns the text of `docs/api.md`."""
    modules = public_modules()
    documented = _documented_names()
    canonical = {
        _identity(name, value): qualified for qualified, (value, name) in documented.items()
    }
    lines = [
        "# kdet API reference",
        "",
        "<!-- Generated by docs/make_api_reference.py from kdet's docstrings. Do not edit. -->",
        "",
        "This file is generated from the docstrings of kdet's public names by",
        "`docs/make_api_reference.py`; do not edit it by hand. After changing a public name or its",
        "docstring, regenerate it from the repository root with",
        "",
        "```",
        REGENERATE_COMMAND,
        "```",
        "",
        "(`tests/test_api_reference.py` fails while it is out of date). Each entry shows the",
        "signature and the first paragraph of the docstring: read the source, or `help(...)`, for",
        "the arguments, shapes and examples.",
        "",
        "## Contents",
        "",
    ]
    for module in modules:
        summary = _summary_line(inspect.getdoc(module) or "")
        lines.append(f"- [`{module.__name__}`](#{_slug(module.__name__)}): {summary}")
    lines.append("")
    for module in modules:
        lines.extend(_render_module(module, canonical))
    _check_unique_anchors(lines)
    return "\n".join(lines).rstrip() + "\n"


def _render_module(module, canonical):
    lines = [f"## `{module.__name__}`", "", inspect.getdoc(module) or "", ""]
    names = public_names(module)
    submodules = _public_submodules(module)
    own = {}
    aliases = []
    for name, value in names.items():
        qualified = canonical[_identity(name, value)]
        if qualified == f"{module.__name__}.{name}":
            own[name] = value
        else:
            aliases.append(f"- `{module.__name__}.{name}` is [`{qualified}`](#{_slug(qualified)})")
    if submodules:
        links = ", ".join(f"[`{sub.__name__}`](#{_slug(sub.__name__)})" for sub in submodules)
        lines.extend([f"**{_KIND_TITLES['module']}:** {links}", ""])
    for kind in ("class", "function", "constant"):
        of_kind = [name for name, value in own.items() if _kind(value) == kind]
        if of_kind:
            links = ", ".join(
                f"[`{name}`](#{_slug(f'{module.__name__}.{name}')})" for name in of_kind
            )
            lines.extend([f"**{_KIND_TITLES[kind]}:** {links}", ""])
    if aliases:
        lines.extend(["**Also exported here:**", "", *aliases, ""])
    if not names and not submodules:
        lines.extend(["No public names.", ""])
    for name, value in own.items():
        lines.extend(_render_name(f"{module.__name__}.{name}", name, value, canonical))
    return lines


def _render_name(qualified, name, value, canonical):
    kind = _kind(value)
    lines = [f"### `{qualified}`", "", "```python", _declaration(name, value), "```", ""]
    if kind == "class":
        bases = [base for base in value.__bases__ if base is not object]
        names = ", ".join(f"`{_class_name(base, canonical)}`" for base in bases)
        lines.extend([f"*class*, bases: {names}" if bases else "*class*", ""])
    summary = _first_paragraph(docstring(value, name))
    if summary:
        lines.extend([summary, ""])
    if kind == "class":
        members = _class_members(value)
        if members:
            lines.extend(["Methods and properties defined here:", "", *members, ""])
    return lines


def _declaration(name, value):
    kind = _kind(value)
    if kind == "constant":
        return f"{name} = {_value_summary(value)}"
    if kind == "class":
        signature = _class_signature(value).replace(return_annotation=inspect.Signature.empty)
        return _format_call(f"class {name}", signature)
    return _format_call(f"def {name}", inspect.signature(value))


def _class_signature(cls):
    """The constructor's signature: `__init__`'s without `self`, else what `inspect` finds."""
    if inspect.isfunction(cls.__init__):
        return _without_first_parameter(inspect.signature(cls.__init__))
    try:
        return inspect.signature(cls)
    except ValueError:  # Python cannot tell for builtin bases, e.g. exceptions.
        return _without_first_parameter(inspect.signature(cls.__init__))


def _without_first_parameter(signature):
    return signature.replace(parameters=list(signature.parameters.values())[1:])


def _format_call(prefix, signature):
    """`prefix(parameters)` on one line, or with the parameters filling indented lines."""
    one_line = f"{prefix}{signature}"
    if len(one_line) <= _MAX_SIGNATURE_WIDTH:
        return one_line
    lines = ["   "]
    for token in _parameter_tokens(signature):
        extended = f"{lines[-1]} {token},"
        if lines[-1].strip() and len(extended) > _MAX_SIGNATURE_WIDTH:
            lines.append(f"    {token},")
        else:
            lines[-1] = extended
    returns = ""
    if signature.return_annotation is not inspect.Signature.empty:
        returns = f" -> {inspect.formatannotation(signature.return_annotation)}"
    body = "".join(f"{line}\n" for line in lines)
    return f"{prefix}(\n{body}){returns}"


def _parameter_tokens(signature):
    """The parameters as `str(signature)` writes them, with its `/` and `*` markers."""
    tokens = []
    positional_only_pending = False
    keyword_only_marker_needed = True
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_only_pending = True
        elif positional_only_pending:
            tokens.append("/")
            positional_only_pending = False
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            keyword_only_marker_needed = False
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY and keyword_only_marker_needed:
            tokens.append("*")
            keyword_only_marker_needed = False
        tokens.append(str(parameter))
    if positional_only_pending:
        tokens.append("/")
    return tokens


def _value_summary(value):
    """The constant's repr when short and stable, else its type and length."""
    text = repr(value)
    stable = isinstance(value, (bool, int, float, str, tuple, list, dict)) and " at 0x" not in text
    if stable and len(text) <= _MAX_VALUE_WIDTH:
        return text
    size = f" of {len(value)} items" if hasattr(value, "__len__") else ""
    return f"<{type(value).__name__}{size}>"


def _class_name(cls, canonical):
    """A readable name for a base class: kdet's public name, Keras's public path, or builtin."""
    if _identity(cls.__name__, cls) in canonical:
        return canonical[_identity(cls.__name__, cls)]
    # Keras records its public paths (`keras.Model`, …) on the classes it exports.
    keras_paths = vars(cls).get("_api_export_path")
    if keras_paths:
        return keras_paths[0] if isinstance(keras_paths, (list, tuple)) else keras_paths
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_members(cls):
    """One Markdown line per public method or property that `cls` itself defines, by name.

    Attributes that merely hold third-party functions (`resnet = staticmethod(ResNet50)`)
    are left out.
    """
    lines = []
    for name, attribute in sorted(vars(cls).items()):
        function = getattr(attribute, "__func__", getattr(attribute, "fget", attribute))
        if name.startswith("_") or not _in_kdet(function):
            continue
        if isinstance(attribute, property):
            summary = _summary_line(inspect.getdoc(attribute) or "")
            lines.append(f"- `{name}` *(property)*: {summary}".rstrip(": "))
            continue
        signature = _method_signature(attribute)
        if signature is None:
            continue
        summary = _summary_line(inspect.getdoc(getattr(cls, name)) or "")
        lines.append(f"- `{name}{signature}`: {summary}".rstrip(": "))
    return lines


def _method_signature(attribute):
    """The signature callers use (without `self`/`cls`), or None when not a method."""
    if isinstance(attribute, staticmethod):
        return inspect.signature(attribute.__func__)
    if isinstance(attribute, classmethod):
        return _without_first_parameter(inspect.signature(attribute.__func__))
    if inspect.isfunction(attribute):
        return _without_first_parameter(inspect.signature(attribute))
    return None


def _slug(heading):
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _check_unique_anchors(lines):
    headings = [line.lstrip("#").strip() for line in lines if re.match(r"#{2,3} ", line)]
    slugs = [_slug(heading) for heading in headings]
    duplicates = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if duplicates:
        raise ValueError(f"docs/api.md: headings with the same anchor: {duplicates}")


def check(path=API_PATH):
    """Returns 0 when `path` holds what `render()` writes, else prints a short diff and 1."""
    expected = render()
    current = path.read_text() if path.exists() else ""
    if current == expected:
        return 0
    diff = list(
        difflib.unified_diff(
            current.splitlines(),
            expected.splitlines(),
            f"{path} (current)",
            f"{path} (generated)",
            lineterm="",
        )
    )
    shown = diff[:_MAX_DIFF_LINES]
    if len(diff) > _MAX_DIFF_LINES:
        shown.append(f"... {len(diff) - _MAX_DIFF_LINES} more diff lines")
    print("\n".join(shown))
    print(f"{path} is out of date: regenerate it with `{REGENERATE_COMMAND}`.")
    return 1


def main(argv=None):
    """Writes `docs/api.md`, or with `--check` compares it with what would be written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 with a diff when docs/api.md is out of date",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check()
    API_PATH.write_text(render())
    print(f"wrote {API_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())
