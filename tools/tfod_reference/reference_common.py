"""What the TF2 and TF1 reference generators share: paths, the reduced configs, the photo.

Imports no TF OD API model code (only its config protos), so the TF1 generator can switch
TensorFlow to graph mode before `object_detection.builders` is imported.
"""

import dataclasses
import pathlib

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from object_detection.protos import pipeline_pb2

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "tests" / "data" / "tfod_configs"
OUTPUT_DIR = REPO / "tests" / "data" / "tfod_reference"
PHOTO = OUTPUT_DIR / "photo.png"
SOURCE_PHOTO = REPO / "kdet" / "datasets" / "data" / "quokka.jpg"
PHOTO_WIDTH = 240
NUM_CLASSES = 3


@dataclasses.dataclass(frozen=True)
class Reference:
    """One reference model: a TF OD API sample config and how it is reduced.

    Attributes:
        config: file name of the TF OD API sample config in `tests/data/tfod_configs/`.
        depth_multiplier: `feature_extractor.depth_multiplier` (SSD only; `None` keeps the config's).
        fpn_depth: `feature_extractor.fpn.additional_layer_depth`, or `None` (no FPN).
        head_depth: SSD `weight_shared_convolutional_box_predictor.depth`, or Faster R-CNN
            `first_stage_box_predictor_depth`.
        resnet_depth_multiplier: width of the Faster R-CNN ResNet body. The TF OD API's Faster
            R-CNN ResNet extractors have no config field for it; the generators pass it to the
            TF OD API's own ResNet builders, which take it (`resnet_v1.resnet_v1_50/101(
            depth_multiplier=...)`, Keras for TF2 and slim for TF1, whose second-stage `block4`
            is scaled alike), so the variable structure is the TF OD API's and only the channel
            counts shrink. `None` keeps full width.
        image_size: the resizer's output size (SSD) or its min and max dimension (Faster R-CNN).
        drop_fields: config fields (one a line) removed before parsing: fields of the sample
            config that the sdist's late-2022 protos no longer have.
        frozen_graph: TF1 only: also write the TF1 exporter's `frozen_inference_graph.pb`.
        seed: seed of the random weights.
    """

    config: str
    depth_multiplier: float | None = None
    fpn_depth: int | None = None
    head_depth: int | None = None
    resnet_depth_multiplier: float | None = None
    image_size: int = 128
    drop_fields: tuple = ()
    frozen_graph: bool = False
    seed: int = 0


REFERENCES = {
    "ssd_mobilenet_v2": Reference(
        "ssd_mobilenet_v2_320x320_coco17_tpu-8.config", depth_multiplier=0.25, seed=1
    ),
    "ssd_mobilenet_v2_fpnlite": Reference(
        "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config",
        depth_multiplier=0.25,
        fpn_depth=32,
        head_depth=32,
        seed=2,
    ),
    "ssd_mobilenet_v1_fpn": Reference(
        "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8.config",
        depth_multiplier=0.25,
        fpn_depth=32,
        head_depth=32,
        seed=3,
    ),
    "ssd_resnet50_v1_fpn": Reference(
        "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8.config",
        depth_multiplier=0.0625,
        fpn_depth=32,
        head_depth=32,
        image_size=160,  # its extractor refuses images under 129 px
        seed=4,
    ),
    "faster_rcnn_resnet50": Reference(
        "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8.config",
        head_depth=32,
        resnet_depth_multiplier=0.0625,
        seed=5,
    ),
    "faster_rcnn_resnet101": Reference(
        "faster_rcnn_resnet101_v1_640x640_coco17_tpu-8.config",
        head_depth=32,
        resnet_depth_multiplier=0.0625,
        seed=6,
    ),
    "faster_rcnn_resnet50_fpn": Reference(
        "faster_rcnn_resnet50_v1_fpn_640x640_coco17_tpu-8.config",
        fpn_depth=16,
        head_depth=32,
        resnet_depth_multiplier=0.0625,
        seed=7,
    ),
}


# TF1 (slim, graph-mode) references: `make_tf1_references.py`.
TF1_REFERENCES = {
    "tf1_ssd_mobilenet_v2": Reference(
        "ssd_mobilenet_v2_coco.config",
        depth_multiplier=0.25,
        drop_fields=("batch_norm_trainable",),
        seed=11,
    ),
    "tf1_faster_rcnn_resnet50": Reference(
        "faster_rcnn_resnet50_coco.config",
        head_depth=32,
        resnet_depth_multiplier=0.0625,
        frozen_graph=True,
        seed=12,
    ),
}


def reduced_config(reference):
    """The sample config of `reference`, reduced for size; returns a `TrainEvalPipelineConfig`."""
    pipeline = pipeline_pb2.TrainEvalPipelineConfig()
    lines = (CONFIG_DIR / reference.config).read_text().splitlines(keepends=True)
    text = "".join(
        line for line in lines if line.split(":")[0].strip() not in reference.drop_fields
    )
    text_format.Merge(text, pipeline)
    meta = pipeline.model.WhichOneof("model")
    model = getattr(pipeline.model, meta)
    model.num_classes = NUM_CLASSES
    extractor = model.feature_extractor
    if reference.fpn_depth is not None:
        extractor.fpn.additional_layer_depth = reference.fpn_depth
    if meta == "ssd":
        model.image_resizer.fixed_shape_resizer.height = reference.image_size
        model.image_resizer.fixed_shape_resizer.width = reference.image_size
        if reference.depth_multiplier is not None:
            extractor.depth_multiplier = reference.depth_multiplier
        predictor = model.box_predictor
        shared = predictor.WhichOneof("box_predictor_oneof") == (
            "weight_shared_convolutional_box_predictor"
        )
        if shared and reference.head_depth is not None:
            predictor.weight_shared_convolutional_box_predictor.depth = reference.head_depth
        nms = model.post_processing.batch_non_max_suppression
    else:
        resizer = model.image_resizer.keep_aspect_ratio_resizer
        resizer.min_dimension = reference.image_size
        resizer.max_dimension = reference.image_size
        model.first_stage_max_proposals = 16
        if reference.head_depth is not None:
            model.first_stage_box_predictor_depth = reference.head_depth
        if reference.fpn_depth is not None:
            model.initial_crop_size = 4
        nms = model.second_stage_post_processing.batch_non_max_suppression
    nms.max_detections_per_class = 10
    nms.max_total_detections = 20
    return pipeline


def load_photo():
    """The reference photo as a `[1, H, W, 3]` float32 tensor (made from quokka.jpg once)."""
    if not PHOTO.exists():
        image = tf.io.decode_jpeg(SOURCE_PHOTO.read_bytes())
        height = round(int(image.shape[0]) * PHOTO_WIDTH / int(image.shape[1]))
        small = tf.image.resize(image, [height, PHOTO_WIDTH], method="area", antialias=True)
        small = tf.cast(tf.clip_by_value(tf.round(small), 0, 255), tf.uint8)
        PHOTO.parent.mkdir(parents=True, exist_ok=True)
        PHOTO.write_bytes(tf.io.encode_png(small).numpy())
    image = tf.io.decode_png(PHOTO.read_bytes(), channels=3)
    return tf.cast(image, tf.float32)[tf.newaxis]


def flatten(prefix, value, out):
    """Store the arrays of a nested dict / list `value` into `out` under `prefix/<key>/<i>`."""
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}/{key}", item, out)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            flatten(f"{prefix}/{index}", item, out)
    elif value is not None:
        out[prefix] = np.asarray(value)
