"""Write a full-width TF OD API TF1 (slim) checkpoint of a sample config, with its outputs.

For checking by hand that kdet restores the TF1 zoo's models at their real size (every
variable of the real layout: the small references of `make_tf1_*references.py` narrow the
layers). Runs inside the reference venv, after `make_references.py` made `photo.png`:

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_tf1_full_size_checkpoint.py \\
        /work/shared/tfod_configs/samples/rfcn_resnet101_coco.config /tmp/rfcn_full

then, in kdet's python, `python tools/tfod_reference/compare_tf1_full_size.py /tmp/rfcn_full`.

The config's layers are kept as they are (90 classes, full widths, the mask head's); only
what sets the cost of a run shrinks (`--image_size`: the keep-aspect-ratio resizer's min and
max dimension; `--proposals`: `first_stage_max_proposals`; NMS 20 detections), which no
variable depends on. The TF1 graph is built with `model_builder` as
`make_tf1_references.build_graph` builds it; its variables keep their initializers, then
(seeded) every batch-norm gamma ~ U(0.4, 0.8), beta ~ N(0, 0.1), moving mean ~ N(0, 0.1),
moving variance ~ U(0.8, 1.25) (no calibration on the photo: too slow at full width) and every
bias ~ N(0, 0.05). Writes into the output folder `model.ckpt.*` (`tf.compat.v1.train.Saver`,
every global variable: as the TF1 zoo archives hold it), `pipeline.config` and `outputs.npz`
(`predict/…`, `detections/…` on the photo, as `make_tf1_references.py` names them). The
checkpoint of a full-width model is 0.2-0.3 GB: delete the folder after.
"""

import argparse
import pathlib
import resource
import sys
import time

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from make_tf1_references import build_graph
from make_tf1_references import randomize_biases
from make_tf1_references import run
from object_detection.protos import pipeline_pb2
from reference_common import Reference
from reference_common import load_photo

BATCH_NORM_DRAWS = {
    "gamma": lambda rng, shape: rng.uniform(0.4, 0.8, shape),
    "beta": lambda rng, shape: 0.1 * rng.standard_normal(shape),
    "moving_mean": lambda rng, shape: 0.1 * rng.standard_normal(shape),
    "moving_variance": lambda rng, shape: rng.uniform(0.8, 1.25, shape),
}


def cheaper_run(pipeline, image_size, proposals):
    """Shrink what no variable depends on: the resizer's sizes, the proposals, the detections."""
    model = pipeline.model.faster_rcnn
    resizer = model.image_resizer.keep_aspect_ratio_resizer
    resizer.min_dimension = image_size
    resizer.max_dimension = image_size
    model.first_stage_max_proposals = proposals
    nms = model.second_stage_post_processing.batch_non_max_suppression
    nms.max_detections_per_class = 20
    nms.max_total_detections = 20


def randomize_batch_norms(session, graph, rng):
    """Draw every slim batch norm's parameters and statistics (`BATCH_NORM_DRAWS`)."""
    count = 0
    with graph.as_default():
        for variable in tf.compat.v1.global_variables():
            name = variable.op.name
            scope, _, leaf = name.rpartition("/")
            if scope.endswith("BatchNorm") and leaf in BATCH_NORM_DRAWS:
                variable.load(BATCH_NORM_DRAWS[leaf](rng, variable.shape), session)
                count += 1
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=pathlib.Path, help="a TF1 faster_rcnn sample config")
    parser.add_argument("output_dir", type=pathlib.Path)
    parser.add_argument("--image_size", type=int, default=320)
    parser.add_argument("--proposals", type=int, default=50)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args(argv)
    start = time.time()
    pipeline = pipeline_pb2.TrainEvalPipelineConfig()
    text_format.Merge(args.config.read_text(), pipeline)
    cheaper_run(pipeline, args.image_size, args.proposals)
    reference = Reference(args.config.name, seed=args.seed)
    graph, image, fetches = build_graph(pipeline, reference)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        photo = session.run(load_photo())
    args.output_dir.mkdir(parents=True, exist_ok=True)
    prefix = str(args.output_dir / "model.ckpt")
    rng = np.random.default_rng(args.seed)
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        norms = randomize_batch_norms(session, graph, rng)
        biases = randomize_biases(session, graph, rng)
        outputs = run(session, image, fetches, photo)
        tf.compat.v1.train.Saver().save(session, prefix, write_meta_graph=False)
        values = sum(int(np.prod(v.shape)) for v in tf.compat.v1.global_variables())
    (args.output_dir / "pipeline.config").write_text(text_format.MessageToString(pipeline))
    np.savez(args.output_dir / "outputs.npz", **outputs)
    entries = len(tf.train.list_variables(prefix))
    size = sum(p.stat().st_size for p in args.output_dir.glob("model.ckpt*"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"{args.config.name}: {values} values, {entries} checkpoint entries ({norms} batch-norm "
        f"variables, {biases} biases drawn), checkpoint {size / 1e6:.0f} MB; "
        f"{int(outputs['detections/num_detections'][0])} detections; "
        f"{time.time() - start:.0f} s, peak RSS {peak:.2f} GB",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
