"""Running code around the import of a module, whoever imports it.

Python has no public post-import hook, so `run_around_imports` puts a finder first on
`sys.meta_path`: it finds the module with the other finders, as the import would have, and
wraps the `exec_module` of the loader it got (that loader object, not its class: everything
else about the module, `importlib.resources` included, stays as it was). Imports only the
standard library, so a module can install a hook without importing what it hooks.
"""

import importlib.abc
import sys


class _AroundImports(importlib.abc.MetaPathFinder):
    """The finder of `run_around_imports`."""

    def __init__(self, matches, around):
        self._matches = matches
        self._around = around

    def find_spec(self, name, path=None, target=None):
        if not self._matches(name):
            return None
        # The finders after this one: what the import would find without it (and a second
        # hook on the same module wraps this one's loader).
        finders = list(sys.meta_path)
        for finder in finders[finders.index(self) + 1:] if self in finders else finders:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # a namespace package: no code of its own to run around
        exec_module, around = spec.loader.exec_module, self._around

        def exec_module_around(module):
            with around(module):
                exec_module(module)

        spec.loader.exec_module = exec_module_around
        return spec


def run_around_imports(matches, around):
    """Runs the code of every module imported from now on whose name `matches` inside
    `around(module)`.

    Args:
        matches: `matches(name) -> bool`, for a module's full name (`"tensorflow"`, `"kdet.zoo"`).
        around: `around(module)` -> a context manager; the module's code runs inside it. After
            its block the module has run (it is fully imported but for the import system's own
            bookkeeping); an exception of the module's code propagates through it.
    """
    sys.meta_path.insert(0, _AroundImports(matches, around))
