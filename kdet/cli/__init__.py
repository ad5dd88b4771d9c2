"""The `kdet` command line: one module per command, registered in `build_parser`.

- `kdet convert {voc,coco,csv} INPUT --output OUT` converts annotated images to TFRecords of
  TF OD API `tf.train.Example`s.
- `kdet predict INPUT… --model MODEL` detects objects in images, folders, glob patterns and
  videos with a zoo model, a `.keras` file, a `kdet train` model directory or a `kdet export`
  SavedModel, and writes annotated copies and JSON of the detections to a new run folder.
- `kdet train` / `kdet lr_sweep` train the model of a pipeline config, or sweep its learning
  rate first.
- `kdet eval` evaluates a model directory's checkpoints (COCO / Pascal VOC metrics).
- `kdet export` writes a SavedModel with the TF OD API serving signature (and TFLite for SSD).
- `kdet plot` draws training curves, precision-recall and AP-per-class charts as PNGs.
- `kdet config convert` writes a pipeline.config as kdet's YAML config.
- `kdet zoo` lists the zoo models.

Every command takes `--import MODULE` (repeatable): a module imported first, e.g. the one that
registers your own feature extractor, so that a pipeline config can name it.

Building the parser imports neither TensorFlow nor Keras (`import kdet` does not either): each
command's module imports the library inside the function that runs the command, so `kdet
--help`, `kdet COMMAND --help` and usage errors answer in well under a second. A value the help
shows comes from a module that imports neither.
"""

import argparse
import importlib
import os
import pathlib
import sys

from kdet.cli.config import add_config_parser
from kdet.cli.convert import add_convert_parser
from kdet.cli.evaluate import add_evaluate_parser
from kdet.cli.export import add_export_parser
from kdet.cli.plot import add_plot_parser
from kdet.cli.predict import add_predict_parser
from kdet.cli.train import add_lr_sweep_parser
from kdet.cli.train import add_train_parser
from kdet.cli.zoo import add_zoo_parser

__all__ = ["build_parser", "main"]

# In the order `kdet --help` lists them.
_COMMANDS = (
    add_convert_parser,
    add_predict_parser,
    add_train_parser,
    add_lr_sweep_parser,
    add_evaluate_parser,
    add_export_parser,
    add_plot_parser,
    add_config_parser,
    add_zoo_parser,
)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Ends each option's help with its default, `(default: 1000)`, unless the help already
    says it; options without a value (flags) and without a default explain themselves."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or action.required
            or action.nargs == 0  # flags: --no_progress, --help, --version
            or default in (None, argparse.SUPPRESS)
            or default == []
            or "(default" in text
            or "default:" in text
        ):
            return text
        return f"{text} (default: %(default)s)"


def build_parser():
    """Returns the `kdet` argument parser."""
    from kdet import __version__

    parser = argparse.ArgumentParser(
        prog="kdet",
        description="kdet: Keras 3 object detection (Faster R-CNN, SSD) the TF OD API way.",
    )
    parser.add_argument("--version", action="version", version=f"kdet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add_parser in _COMMANDS:
        add_parser(subparsers)
    for command_parser in _command_parsers(parser):
        command_parser.formatter_class = DefaultsHelpFormatter
        command_parser.add_argument(
            "--import",
            dest="imports",
            action="append",
            default=[],
            metavar="MODULE",
            help="import this Python module (a name importable from the current folder or "
            "PYTHONPATH, or a .py file) first, e.g. the one that registers your feature "
            "extractor; repeatable",
        )
    return parser


def _command_parsers(parser):
    """The parsers of every command, nested ones (`kdet config convert`) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command_parser in action.choices.values():
                yield command_parser
                yield from _command_parsers(command_parser)


def main(argv=None):
    """Entry point of the `kdet` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from kdet.data.errors import DataError
    from kdet.utils.folder_lock import FolderLockedError

    try:
        for module in args.imports:
            _import_user_module(module)
        return args.run(args)
    except (DataError, OSError, ValueError, FolderLockedError) as error:
        # Bad paths, configs or data, a full disk, a folder in use: the user's to fix, so one
        # clear line, no stack trace.
        print(f"kdet {args.command}: error: {error}", file=sys.stderr)
        return 2


def _import_user_module(module):
    """Imports `--import MODULE`: a module name (the current folder first) or a `.py` file.

    A `.py` file is imported under its stem, with its folder on `sys.path` (so it can import
    its neighbours); a stem that names another module already imported is refused.

    Raises:
        ValueError: naming the module, when it cannot be found or its name is taken.
    """
    if module.endswith(".py"):
        path = pathlib.Path(module).resolve()
        if not path.is_file():
            raise ValueError(f"--import {module}: no such file")
        loaded = sys.modules.get(path.stem)
        if loaded is not None:
            if pathlib.Path(getattr(loaded, "__file__", "") or "").resolve() == path:
                return loaded
            raise ValueError(
                f"--import {module}: the module name {path.stem!r} is already taken by "
                f"{getattr(loaded, '__file__', None) or 'a built-in module'}; rename the file"
            )
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        return importlib.import_module(path.stem)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        parts = module.split(".")
        if error.name not in {".".join(parts[:end]) for end in range(1, len(parts) + 1)}:
            raise  # the module itself imports something missing: its own traceback says what
        raise ValueError(
            f"--import {module}: no module named {error.name!r} in the current folder or on "
            "PYTHONPATH (or give the path of its .py file)"
        ) from None
