"""Run the TF OD API's TF2 Context R-CNN attention block on seeded inputs, for kdet's parity test.

Runs inside the reference venv made by `setup_venv.sh` (the TF OD API's own code, never kdet's):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_context_rcnn_references.py

and writes `tests/data/tfod_reference/context_rcnn_attention.npz`, read by
`tests/models/faster_rcnn/test_context_rcnn.py`:

- `box_features` `[B * P, 2, 2, C]`, `context_features` `[B, M, D]`, `valid_context_size`
  `[B]`, `num_proposals` `[B]`, `bottleneck_dimension`, `attention_temperature`;
- per projection `<query|key|value|feature>/` of the block: `kernel`, `bias` (its dense layer)
  and `gamma`, `beta`, `moving_mean`, `moving_variance` (its batch norm), random (seeded);
- `outputs/inference`, `outputs/training`: `context_rcnn_lib_tf2.AttentionBlock` outputs
  `[B, P, 1, 1, C]` with `is_training` False (moving statistics) and True (batch statistics).

Everything is seeded (`numpy.random.default_rng(SEED)`); the block runs eagerly.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pathlib

import numpy as np
import tensorflow as tf
from object_detection.meta_architectures import context_rcnn_lib_tf2

SEED = 19
OUTPUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "tfod_reference"
BATCH, PROPOSALS, DEPTH, CONTEXT, CONTEXT_DEPTH = 2, 4, 8, 5, 10
BOTTLENECK, TEMPERATURE = 6, 0.2
PROJECTIONS = ("query", "key", "value", "feature")


def _projection(block, name):
    return {
        "query": block._query_proj,
        "key": block._key_proj,
        "value": block._val_proj,
        "feature": block._feature_proj,
    }[name]


def _run(is_training, inputs, weights):
    block = context_rcnn_lib_tf2.AttentionBlock(
        BOTTLENECK, TEMPERATURE, is_training=is_training, max_num_proposals=PROPOSALS
    )
    block(**inputs)  # builds every variable
    for name in PROJECTIONS:
        projection = _projection(block, name)
        projection.projection.kernel.assign(weights[f"{name}/kernel"])
        projection.projection.bias.assign(weights[f"{name}/bias"])
        for variable in ("gamma", "beta", "moving_mean", "moving_variance"):
            getattr(projection.batch_norm, variable).assign(weights[f"{name}/{variable}"])
    return block(**inputs).numpy()


def main():
    rng = np.random.default_rng(SEED)
    out = {
        "box_features": rng.normal(size=(BATCH * PROPOSALS, 2, 2, DEPTH)).astype(np.float32),
        "context_features": rng.normal(size=(BATCH, CONTEXT, CONTEXT_DEPTH)).astype(np.float32),
        "valid_context_size": np.array([3, CONTEXT], np.int32),
        "num_proposals": np.array([PROPOSALS, 2], np.int32),
        "bottleneck_dimension": np.array(BOTTLENECK),
        "attention_temperature": np.array(TEMPERATURE, np.float32),
    }
    sizes = {"query": (DEPTH, BOTTLENECK), "key": (CONTEXT_DEPTH, BOTTLENECK),
             "value": (CONTEXT_DEPTH, BOTTLENECK), "feature": (BOTTLENECK, DEPTH)}
    for name, (fan_in, units) in sizes.items():
        out[f"{name}/kernel"] = rng.normal(0, 0.5, (fan_in, units)).astype(np.float32)
        out[f"{name}/bias"] = rng.normal(0, 0.1, units).astype(np.float32)
        out[f"{name}/gamma"] = rng.uniform(0.5, 1.5, units).astype(np.float32)
        out[f"{name}/beta"] = rng.normal(0, 0.2, units).astype(np.float32)
        out[f"{name}/moving_mean"] = rng.normal(0, 0.2, units).astype(np.float32)
        out[f"{name}/moving_variance"] = rng.uniform(0.5, 2.0, units).astype(np.float32)
    inputs = {
        "box_features": tf.constant(out["box_features"]),
        "context_features": tf.constant(out["context_features"]),
        "valid_context_size": tf.constant(out["valid_context_size"]),
        "num_proposals": tf.constant(out["num_proposals"]),
    }
    out["outputs/inference"] = _run(False, inputs, out)
    out["outputs/training"] = _run(True, inputs, out)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUTPUT / "context_rcnn_attention.npz", **out)
    print(f"wrote {OUTPUT / 'context_rcnn_attention.npz'}")


if __name__ == "__main__":
    main()
