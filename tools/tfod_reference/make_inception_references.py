"""Make small TF1 (slim) TF OD API reference models of the Inception v2 / v3 extractors.

Runs inside the reference venv made by `setup_venv.sh`, after `make_references.py` (it reads
`photo.png`):

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_inception_references.py

`make_tf1_references.make_reference` builds, randomizes, saves and runs each model exactly as
for the other TF1 references (see that script), into `tests/data/tfod_reference/<name>/`. The
sample configs are the TF1 ones of the TF OD API (`../shared/tfod_configs/samples/` beside the
repository, `--config_dir`), reduced by `reference_common.reduced_config` and, for size, made
narrow:

- `tf1_ssd_inception_v2`, `tf1_ssd_inception_v3`: the config's `depth_multiplier` (0.0625,
  0.03125) and `min_depth` set (`INCEPTION_MIN_DEPTH`; slim's depths are
  `max(int(d * m), min_depth)`, and the config's 16 would keep most layers 16 deep), and the box
  predictor's `kernel_size: 1` (its 3x3 kernels held half the values): checkpoints of 0.5 MB
  otherwise.
- `tf1_faster_rcnn_inception_v2`: its `feature_extractor` message has no width fields; the TF OD
  API's `FasterRCNNInceptionV2FeatureExtractor` takes `depth_multiplier` and `min_depth` as
  constructor arguments, which `narrow_faster_rcnn_inception_v2` passes
  (`FASTER_RCNN_DEPTH_MULTIPLIER`, `INCEPTION_MIN_DEPTH`), so kdet's test builds the config's
  model with those two values.
"""

import argparse
import dataclasses
import pathlib
import sys

import make_tf1_references
from make_tf1_references import make_reference
from object_detection.builders import model_builder
from object_detection.models import faster_rcnn_inception_v2_feature_extractor
from reference_common import OUTPUT_DIR
from reference_common import REPO
from reference_common import Reference

SAMPLE_CONFIGS = REPO.parent / "shared" / "tfod_configs" / "samples"
# slim's depth floor in every Inception reference (the configs' 16 would dominate the size).
INCEPTION_MIN_DEPTH = 8
# Width of the Faster R-CNN reference's body (kdet's test uses the same).
FASTER_RCNN_DEPTH_MULTIPLIER = 0.0625

REFERENCES = {
    "tf1_ssd_inception_v2": Reference(
        "ssd_inception_v2_coco.config", depth_multiplier=0.0625, seed=21
    ),
    "tf1_ssd_inception_v3": Reference(
        "ssd_inception_v3_coco.config", depth_multiplier=0.03125, seed=22
    ),
    "tf1_faster_rcnn_inception_v2": Reference(
        "faster_rcnn_inception_v2_coco.config", head_depth=32, seed=24
    ),
}


def _narrow_ssd(pipeline):
    """`min_depth: INCEPTION_MIN_DEPTH`, and 1x1 box predictors (the configs' 3x3 ones on the
    six maps hold half the model's values)."""
    pipeline.model.ssd.feature_extractor.min_depth = INCEPTION_MIN_DEPTH
    pipeline.model.ssd.box_predictor.convolutional_box_predictor.kernel_size = 1


class NarrowFasterRCNNInceptionV2(
    faster_rcnn_inception_v2_feature_extractor.FasterRCNNInceptionV2FeatureExtractor
):
    """The TF OD API's extractor with the references' `depth_multiplier` and `min_depth`."""

    def __init__(self, *args, **kwargs):
        super().__init__(
            *args,
            depth_multiplier=FASTER_RCNN_DEPTH_MULTIPLIER,
            min_depth=INCEPTION_MIN_DEPTH,
            **kwargs,
        )


def narrow_faster_rcnn_inception_v2():
    """Make `model_builder` build `faster_rcnn_inception_v2` as `NarrowFasterRCNNInceptionV2`
    (for this process: the map is module state)."""
    model_builder.FASTER_RCNN_FEATURE_EXTRACTOR_CLASS_MAP["faster_rcnn_inception_v2"] = (
        NarrowFasterRCNNInceptionV2
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"references to make (default: all of {list(REFERENCES)})"
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    parser.add_argument("--config_dir", type=pathlib.Path, default=SAMPLE_CONFIGS)
    args = parser.parse_args(argv)
    narrow_faster_rcnn_inception_v2()
    make_tf1_references.CONFIG_CHANGES.update(
        tf1_ssd_inception_v2=_narrow_ssd, tf1_ssd_inception_v3=_narrow_ssd
    )
    for name in args.names or REFERENCES:
        reference = REFERENCES[name]
        # `reduced_config` reads `CONFIG_DIR / config`: an absolute path points elsewhere.
        config = str((args.config_dir / reference.config).resolve())
        make_reference(name, dataclasses.replace(reference, config=config), args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
