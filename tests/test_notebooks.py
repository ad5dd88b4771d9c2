"""Runs every notebook in `notebooks/` top to bottom, so the notebooks never rot.

Each notebook runs in a fresh `python3` Jupyter kernel (nbclient) whose working directory is a
temporary folder, so whatever it writes stays out of the repository, and which imports the same
kdet as these tests (its folder goes first on the kernel's `PYTHONPATH`). Notebooks are stored
without outputs, so their diffs show only code and text; a test checks it.

The test runs every cell but trains on fewer images for fewer steps than a reader does: as
papermill would, it sets `TEST_PARAMETERS` in a cell after the one tagged `parameters`. The
notebooks print and plot their results and assert none, so a short run exercises the same code;
at their own sizes 02-04 took 1.5-3 minutes each on the 2-core CPU, most of the suite's budget.
"""

import ast
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


# Overrides of parameters-cell values for the test run (see the module docstring). Steps stay a
# multiple of the notebooks' log and checkpoint intervals (10, NUM_STEPS // 2, ...), and
# notebook 04's NUM_STEPS above its config's 20 warm-up steps, so every log, curve and
# checkpoint the notebooks read back is still written.
TEST_PARAMETERS = {
    "02_custom_data.ipynb": {"NUM_STEPS": 20, "WARMUP_STEPS": 5},
    "03_custom_feature_extractor.ipynb": {"NUM_TRAIN_IMAGES": 128, "NUM_STEPS": 20},
    "04_distributed_and_configs.ipynb": {
        "NUM_TRAIN_IMAGES": 32,
        "NUM_EVAL_IMAGES": 8,
        "CLI_STEPS": 20,
        "NUM_STEPS": 40,
    },
    "05_keypoints_centernet.ipynb": {"IMAGE_SIZE": 128, "NUM_STEPS": 2, "BATCH_SIZE": 2},
    "06_masks_mask_rcnn.ipynb": {"IMAGE_SIZE": 64, "NUM_STEPS": 2, "BATCH_SIZE": 2},
}


def _ids(paths):
    return [path.name for path in paths]


def with_test_parameters(notebook, name):
    """`notebook` with a cell setting `TEST_PARAMETERS[name]` after its `parameters` cell.

    Raises:
        AssertionError: the notebook has no cell tagged `parameters`, or an overridden name is
            not assigned in it (a renamed parameter would otherwise be set in vain).
    """
    parameters = TEST_PARAMETERS.get(name)
    if not parameters:
        return notebook
    index = next(
        (i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])),
        None,
    )
    assert index is not None, f"{name}: no code cell tagged 'parameters'"
    assigned = {
        target.id
        for node in ast.walk(ast.parse(notebook.cells[index].source))
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert set(parameters) <= assigned, (
        f"{name}: TEST_PARAMETERS {sorted(set(parameters) - assigned)} are not set in its "
        "parameters cell"
    )
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, cell)
    return notebook


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
    notebook = with_test_parameters(nbformat.read(path, as_version=4), path.name)
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


def test_test_parameters_go_after_the_parameters_cell_and_must_name_its_values(monkeypatch):
    path = NOTEBOOK_DIR / "03_custom_feature_extractor.ipynb"
    notebook = with_test_parameters(nbformat.read(path, as_version=4), path.name)
    index = next(
        i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
    )
    injected = notebook.cells[index + 1]
    assert injected.metadata.tags == ["injected-parameters"]
    assert injected.source == "NUM_TRAIN_IMAGES = 128\nNUM_STEPS = 20"
    monkeypatch.setitem(TEST_PARAMETERS, "renamed.ipynb", {"NUM_STEP": 20})
    with pytest.raises(AssertionError, match=r"\['NUM_STEP'\] are not set"):
        with_test_parameters(nbformat.read(path, as_version=4), "renamed.ipynb")


def test_notebooks_point_at_the_public_api_not_at_benchmark_code():
    # Notebook 02 once sent readers to a benchmark's private `detect_tiled`; the public name is
    # `model.predict_tiled` (as the README and docs/zoo.md say).
    texts = {path.name: path.read_text() for path in NOTEBOOKS}
    assert not [name for name, text in texts.items() if "detect_tiled" in text]
    assert "model.predict_tiled(" in texts["02_custom_data.ipynb"]
