"""Make small TF OD API references of CenterNet feature extractors for kdet's parity tests.

Runs inside the reference venv made by `setup_venv.sh`:

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_center_net_extractor_references.py [NAMES]

Each reference is one TF OD API CenterNet feature extractor, built by its own code with a
reduced size, given seeded random weights (batch norms calibrated on the photo, as
`make_references.py` does), and run on `photo.png` cropped to 64×96 (its top-left corner; both multiples of 32,
which its stages need). It writes `tests/data/tfod_reference/<name>/`:
- `checkpoint/ckpt-0.*`: `tf.train.Checkpoint(model=<extractor>)`, so the extractor's
  variables are under `model/` (in a CenterNet checkpoint they are under
  `model/_feature_extractor/`);
- `outputs.npz`: `preprocessed_patch` (the top-left 16×16 pixels of the extractor's
  `preprocess` of the crop: enough to check the channel order and statistics),
  `features/<i>` (its outputs on the whole preprocessed crop, inference mode);
- `variables.txt`: `name<TAB>dtype<TAB>shape` of every checkpoint entry.

The full-size ResNet extractors (no smaller TF OD API variant; ~100 MB checkpoints) get only
their `variables.txt` (`LISTINGS`), for kdet's mapping test of their layout.
"""

import argparse
import dataclasses
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf
from make_references import calibrate_batch_norms
from make_references import randomize_biases
from object_detection.models import center_net_hourglass_feature_extractor
from object_detection.models import center_net_mobilenet_v2_fpn_feature_extractor
from object_detection.models import center_net_resnet_feature_extractor
from object_detection.models import center_net_resnet_v1_fpn_feature_extractor
from object_detection.models.keras_models import hourglass_network
from reference_common import OUTPUT_DIR
from reference_common import load_photo

# Both multiples of 32: the MobileNetV2 FPN merges stride-32 maps, the reduced hourglass
# halves its stride-4 maps three times.
CROP = (64, 96)
PATCH = 16
# The hourglass sample configs' statistics (BGR), and the MobileNetV2 FPN zoo config's.
HOURGLASS_STATISTICS = {
    "channel_means": [104.01362025, 114.03422265, 119.9165958],
    "channel_stds": [73.6027665, 69.89082075, 70.9150767],
    "bgr_ordering": True,
}
MOBILENET_STATISTICS = {
    "channel_means": [123.675, 116.28, 103.53],
    "channel_stds": [58.395, 57.12, 57.375],
    "bgr_ordering": False,
}


@dataclasses.dataclass(frozen=True)
class ExtractorReference:
    """One reference: `build()` makes the TF OD API extractor; `seed` seeds its weights."""

    build: object
    seed: int


def _tiny_hourglass():
    # The Hourglass-104 layout (two stacked hourglasses, intermediate supervision) with 3
    # stages and 4..8 channels: every kind of block and shortcut.
    network = hourglass_network.HourglassNetwork(
        num_stages=3,
        input_channel_dims=4,
        channel_dims_per_stage=[4, 4, 6, 8],
        blocks_per_stage=[2, 2, 2, 2],
        num_hourglasses=2,
    )
    return center_net_hourglass_feature_extractor.CenterNetHourglassFeatureExtractor(
        network, **HOURGLASS_STATISTICS
    )


def _tiny_mobilenet_v2_fpn():
    return center_net_mobilenet_v2_fpn_feature_extractor.mobilenet_v2_fpn(
        use_separable_conv=True, depth_multiplier=0.1, **MOBILENET_STATISTICS
    )


REFERENCES = {
    "center_net_hourglass_extractor": ExtractorReference(_tiny_hourglass, seed=41),
    "center_net_mobilenet_v2_fpn_extractor": ExtractorReference(_tiny_mobilenet_v2_fpn, seed=42),
}


# Extractors whose checkpoint is only listed: name → TF OD API builder function.
LISTINGS = {
    "center_net_resnet_v2_50_extractor": center_net_resnet_feature_extractor.resnet_v2_50,
    "center_net_resnet_v1_50_fpn_extractor": (
        center_net_resnet_v1_fpn_feature_extractor.resnet_v1_50_fpn
    ),
}


class _AsDetectionModel:
    """The extractor seen through the two things `calibrate_batch_norms` and
    `randomize_biases` use of a detection model."""

    def __init__(self, extractor):
        self.extractor = extractor
        self.submodules = extractor.submodules
        self.trainable_variables = extractor.trainable_variables

    def predict(self, preprocessed, true_image_shapes):
        del true_image_shapes
        return self.extractor(preprocessed, training=True)


def make_reference(name, reference, output_dir):
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(reference.seed)
    rng = np.random.default_rng(reference.seed)
    extractor = reference.build()
    images = load_photo()[:, : CROP[0], : CROP[1]]
    preprocessed = extractor.preprocess(images)
    extractor(preprocessed)  # creates the variables
    model = _AsDetectionModel(extractor)
    n_norms = calibrate_batch_norms(model, preprocessed, None, rng)
    n_biases = randomize_biases(model, rng)
    features = extractor(preprocessed, training=False)
    outputs = {"preprocessed_patch": preprocessed[:, :PATCH, :PATCH].numpy()}
    outputs.update({f"features/{i}": feature.numpy() for i, feature in enumerate(features)})

    target = output_dir / name
    if target.exists():
        shutil.rmtree(target)
    (target / "checkpoint").mkdir(parents=True)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=extractor), str(target / "checkpoint"), max_to_keep=1
    )
    manager.save(checkpoint_number=0)
    prefix = str(target / "checkpoint" / "ckpt-0")
    listing = _write_listing(prefix, target)
    _check_restore(reference, prefix, preprocessed, features)
    np.savez_compressed(target / "outputs.npz", **outputs)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(
        f"{name}: {len(listing)} checkpoint entries, {n_norms} batch norms, {n_biases} biases, "
        f"features {[tuple(f.shape) for f in features]}, folder {size / 1e3:.0f} KB",
        flush=True,
    )


def _write_listing(prefix, target):
    """Writes `target / "variables.txt"` for the checkpoint `prefix`; returns the listing."""
    listing = tf.train.list_variables(prefix)
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    (target / "variables.txt").write_text(
        "".join(f"{n}\t{dtypes[n].name}\t{list(s)}\n" for n, s in listing)
    )
    return listing


def make_listing(name, build, output_dir):
    """Only the `variables.txt` of the extractor `build` makes (default statistics)."""
    tf.keras.backend.clear_session()
    extractor = build(channel_means=[], channel_stds=[], bgr_ordering=False)
    extractor(tf.zeros([1, 64, 64, 3]))
    target = output_dir / name
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        prefix = tf.train.Checkpoint(model=extractor).save(f"{folder}/ckpt")
        listing = _write_listing(prefix, target)
    print(f"{name}: {len(listing)} checkpoint entries listed", flush=True)


def _check_restore(reference, prefix, preprocessed, expected):
    """A new extractor restored from the checkpoint computes the same features."""
    tf.keras.backend.clear_session()
    extractor = reference.build()
    extractor(preprocessed)
    tf.train.Checkpoint(model=extractor).restore(prefix).assert_existing_objects_matched()
    for got, want in zip(extractor(preprocessed, training=False), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=sorted({**REFERENCES, **LISTINGS}))
    parser.add_argument("--output_dir", default=str(OUTPUT_DIR))
    args = parser.parse_args(argv)
    output_dir = pathlib.Path(args.output_dir)
    for name in args.names:
        if name in LISTINGS:
            make_listing(name, LISTINGS[name], output_dir)
        else:
            make_reference(name, REFERENCES[name], output_dir)


if __name__ == "__main__":
    sys.exit(main())
