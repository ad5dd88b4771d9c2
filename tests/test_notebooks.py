"""Runs every notebook in `notebooks/` top to bottom, so the notebooks never rot.

Each notebook runs in a fresh `python3` Jupyter kernel (nbclient) whose working directory is a
temporary folder, so whatever it writes stays out of the repository, and which imports the same
kdet as these tests (its folder goes first on the kernel's `PYTHONPATH`). Notebooks are stored
without outputs, so their diffs show only code and text; a test checks it.
"""

import os
import pathlib

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from nbclient.exceptions import CellTimeoutError
from nbclient.exceptions import DeadKernelError

import kdet

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# The most one notebook may take, start-up included; each runs in 0.5-2 minutes on a 2-core CPU.
NOTEBOOK_TIMEOUT_S = 600


def _ids(paths):
    return [path.name for path in paths]


def test_notebooks_are_found():
    # A moved folder or renamed files would otherwise leave the tests below silently empty.
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.large
@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S + 60)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    kdet_root = str(pathlib.Path(kdet.__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [kdet_root, os.environ.get("PYTHONPATH")]))
    )
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=NOTEBOOK_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
        # Plain tracebacks: the failure message below is read in a log, not a notebook.
        extra_arguments=["--InteractiveShell.colors=nocolor"],
    )
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        # The message holds the failing cell's source and its traceback (or the timeout).
        failure = f"{path.name}: {error}"
    if failure:
        # Outside the `except`, so the traceback is not printed twice as a chained exception.
        pytest.fail(failure, pytrace=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_valid_and_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3", path.name
    executed = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not executed, (
        f"{path.name}: code cells {executed} have outputs or execution counts; clear them "
        "(in Jupyter: Edit > Clear Outputs of All Cells, then save; or `jupyter nbconvert "
        "--clear-output --inplace notebooks/*.ipynb`) so diffs show only code and text"
    )


def test_notebooks_point_at_the_public_api_not_at_benchmark_code():
    # Notebook 02 once sent readers to a benchmark's private `detect_tiled`; the public name is
    # `model.predict_tiled` (as the README and docs/zoo.md say).
    texts = {path.name: path.read_text() for path in NOTEBOOKS}
    assert not [name for name, text in texts.items() if "detect_tiled" in text]
    assert "model.predict_tiled(" in texts["02_custom_data.ipynb"]
