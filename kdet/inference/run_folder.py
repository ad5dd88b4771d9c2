"""The folder a `kdet predict` run writes to: a fresh one per run, filled all at once.

A run never mixes its results with an earlier run's:
- By default a non-empty folder is left alone and the run takes the next numbered sibling, as
  Ultralytics does: `runs/detections`, then `runs/detections2`, `runs/detections3`, …
- With `overwrite`, the folder itself is used: the outputs of the earlier kdet run there (as its
  manifest lists them, or, for folders of kdet versions without one, `detections.json` and
  `*_detections.jpg`) are replaced; other files stay.

Outputs are written to a staging folder inside and moved into place by `commit` only once the
whole run succeeded; `discard` (a failure, `strict` stopping at a bad file, Ctrl-C) leaves the
folder as it was, and removes it if the run created it.

Nothing is written through a symbolic link in the folder: outputs are created in the staging
folder (a fresh real folder) and renamed over the names in `folder`, which replaces a link
itself, never its target; links in the way are moved aside and deleted as links. A manifest
that is a link is not trusted.
"""

import json
import os
import pathlib
import shutil

# Lists, in a run folder, the files a run wrote, so that `overwrite` replaces exactly those.
MANIFEST = ".kdet_predict.json"
# Written last: its presence says the run finished.
DETECTIONS_JSON = "detections.json"


def numbered_folder(requested):
    """`requested` if it does not exist or is an empty folder, else the first free
    `<requested>2`, `<requested>3`, … (`<requested>-2`, … for a name ending in a digit; free:
    missing or empty; a numbered name that is a symbolic link is never free, wherever it
    points).

    Raises:
        ValueError: if `requested` is a file.
    """
    requested = pathlib.Path(requested)
    if requested.exists() and not requested.is_dir():
        raise ValueError(f"output folder {requested}: a file is in the way")
    base = requested if requested.name else requested.resolve()
    # `runs/m4` → `runs/m4-2`, not `runs/m42`.
    separator = "-" if base.name[-1:].isdigit() else ""
    candidate, number = requested, 1
    while os.path.lexists(candidate) and (
        not candidate.is_dir()
        or any(candidate.iterdir())
        or (candidate != requested and candidate.is_symlink())
    ):
        number += 1
        candidate = base.with_name(f"{base.name}{separator}{number}")
    return candidate


def _fresh_folder(path):
    """An empty real folder at `path`: a link or file there is removed (a link as a link, its
    target untouched), a folder a killed run left emptied."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.mkdir()
    return path


class RunFolder:
    """Where one run's outputs go; see the module docstring.

    Args:
        requested: the folder asked for (`--output_dir`).
        overwrite: bool. Replace the earlier kdet outputs in `requested` instead of taking a
            numbered folder.

    Attributes:
        folder: `pathlib.Path`, where the outputs will be once committed.

    Example:
    ```python
    run = RunFolder("runs/detections", overwrite=False)
    try:
        save_image(drawn, run.staged("cat_detections.jpg"))
        run.commit()
    except BaseException:
        run.discard()
        raise
    ```
    """

    def __init__(self, requested, overwrite=False):
        requested = pathlib.Path(requested)
        if overwrite:
            if requested.exists() and not requested.is_dir():
                raise ValueError(f"output folder {requested}: a file is in the way")
            self.folder = requested
        else:
            self.folder = numbered_folder(requested)
        self._created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._staging = _fresh_folder(self.folder / f".kdet-predict.tmp-{os.getpid()}")

    def staged(self, name):
        """The staging path of output file `name` (a plain file name)."""
        return self._staging / name

    def commit(self):
        """Moves the staged files into `folder`, replacing an earlier run's outputs there.

        The earlier outputs are moved aside first and deleted only once every new file is in
        place; if a move fails they are put back.
        """
        entries = sorted(entry.name for entry in self._staging.iterdir())
        (self._staging / MANIFEST).write_text(json.dumps({"entries": entries}) + "\n")
        stale = set(self._earlier_outputs()) | set(entries)
        aside = _fresh_folder(self.folder / f".kdet-predict.old-{os.getpid()}")
        moved_aside, moved_in = [], []
        # detections.json last: a reader that finds it finds the images it lists.
        order = sorted(entries, key=lambda name: name == DETECTIONS_JSON) + [MANIFEST]
        try:
            for name in sorted(stale | {MANIFEST}):
                if os.path.lexists(self.folder / name):
                    os.replace(self.folder / name, aside / name)
                    moved_aside.append(name)
            for name in order:
                os.replace(self._staging / name, self.folder / name)
                moved_in.append(name)
        except BaseException:
            for name in moved_in:
                (self.folder / name).unlink(missing_ok=True)
            for name in moved_aside:
                os.replace(aside / name, self.folder / name)
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
            shutil.rmtree(self._staging, ignore_errors=True)

    def discard(self):
        """Removes the staged files (and `folder`, if this run created it and it is empty)."""
        shutil.rmtree(self._staging, ignore_errors=True)
        if self._created:
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def _earlier_outputs(self):
        """Names of the files an earlier kdet run wrote in `folder`."""
        manifest = self.folder / MANIFEST
        if manifest.is_symlink():  # not written by kdet: whatever it points to is not read
            return []
        try:
            entries = json.loads(manifest.read_text())["entries"]
            # Plain names only: nothing outside the folder is ever touched.
            return [
                name for name in entries
                if isinstance(name, str) and name not in ("", "..")
                and pathlib.Path(name).name == name
            ]
        except FileNotFoundError:
            if not (self.folder / DETECTIONS_JSON).is_file():
                return []
            # Written by a kdet version without a manifest: its fixed output names.
            return [DETECTIONS_JSON] + [
                path.name for path in self.folder.glob("*_detections.jpg") if path.is_file()
            ]
        except (OSError, ValueError, KeyError, TypeError):
            return []
