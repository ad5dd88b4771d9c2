"""Runs exported SavedModels in a fresh Python where `import kdet` fails.

As a script: `python kdet_free_runner.py REQUESTS OUTPUTS`, where REQUESTS is a pickle of
`[(saved_model_dir, input_array), …]`; it writes a pickle of the numpy outputs of each
model's `serving_default` signature. It imports only numpy and TensorFlow, and blocks kdet
(an installed copy would otherwise be importable). Tests call `run_without_kdet`.
"""

import os
import pickle
import subprocess
import sys


def run_without_kdet(requests, work_dir, timeout=300):
    """`[(saved_model_dir, input_array)]` → `[{output name: numpy array}]`, run kdet-free.

    Runs from `work_dir` with `PYTHONPATH` unset, so neither the repository nor `tests/` is on
    the path, and with a finder that fails any kdet import.
    """
    requests_path = os.path.join(work_dir, "requests.pkl")
    outputs_path = os.path.join(work_dir, "outputs.pkl")
    with open(requests_path, "wb") as file:
        pickle.dump([(str(directory), array) for directory, array in requests], file)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), requests_path, outputs_path],
        cwd=work_dir, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(outputs_path, "rb") as file:
        return pickle.load(file)


def _main(requests_path, outputs_path):
    import importlib.abc

    class BlockKdet(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "kdet" or name.startswith("kdet."):
                raise ImportError(f"{name} must not be needed to serve an exported model")

    sys.meta_path.insert(0, BlockKdet())
    try:
        import kdet  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("kdet is importable: the runner would prove nothing")

    import tensorflow as tf

    with open(requests_path, "rb") as file:
        requests = pickle.load(file)
    outputs = []
    for directory, array in requests:
        serve = tf.saved_model.load(directory).signatures["serving_default"]
        result = serve(input_tensor=tf.constant(array))
        outputs.append({name: value.numpy() for name, value in result.items()})
    assert not any(name == "kdet" or name.startswith("kdet.") for name in sys.modules)
    with open(outputs_path, "wb") as file:
        pickle.dump(outputs, file)


if __name__ == "__main__":
    _main(*sys.argv[1:])
