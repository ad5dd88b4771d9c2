"""Mask R-CNN ResNet-50 speed on CPU: kdet `MaskRCNN` against the TF OD API model built from the
same config, and against torchvision `maskrcnn_resnet50_fpn`.

kdet and the TF OD API build the same config text: the sample `mask_rcnn_resnet50_atrous_coco`
(`../shared/tfod_configs/samples/`, or `--config`) edited by `edit_config` to what the TF OD
API's TF2 (Keras) code can build and to a moderate size: `faster_rcnn_resnet50_keras` at stride
16 (its Keras ResNet takes no other, so no atrous conv5: the `first_stage_atrous_rate` and the
stride-8 anchors go), a 512x512 `fixed_shape_resizer`, 300 proposals (the sample's), 64 sampled
RoIs in training (the proto default, stated), 100 detections (the sample: 300). The rest is the
sample's: 33x33 masks from 4 convolutions, frozen batch norms, 90 classes, random init.
torchvision `maskrcnn_resnet50_fpn` (ResNet-50 + FPN, random init, so its batch norms train)
runs at the same size and caps: `min_size=max_size=512`, 300 proposals after the RPN's NMS in
training and at test, 64 sampled RoIs per image, 100 detections, score threshold 0 (the
sample's; torchvision's 0.05 would drop every detection of a random-init model and skip its
mask head).

Cases, on the same bundled photos resized to 512x512 with 1..3 random boxes and ellipse masks:
- training step, batch 2, SGD with momentum 0.9 (the sample's optimizer): kdet
  `train_on_batch` with `"masks"`; the TF OD API's `model_lib_v2` step in a `tf.function` on a
  model built with `is_training=True` (learning phase 1, `provide_groundtruth` with
  `groundtruth_masks_list`, `predict`, `loss` + regularization, gradients, update) on images
  its `preprocess` already made; the worker stops unless its losses include the mask loss;
  torch `train()`, forward with `"masks"` targets, `backward()`, SGD step.
- inference, batch 1: kdet `tf.function(model.detect)` (masks pasted into the image); the TF OD
  API's `preprocess` -> `predict` -> `postprocess` and `reframe_box_masks_to_image_masks` (as its
  evaluation pastes them) in a `tf.function`; torch `eval()` under `no_grad()` (which pastes).
The TF OD API (`--tfod_python`, its venv) and torchvision (`--torch_python`, a venv with torch
and torchvision) run as subprocesses driven one case at a time; the inference cases, then the
training cases, alternate within each round after 2 warm-up calls (`versus.time_versus`), so
load drift on a shared machine hits all alike. Tables report
medians of wall time and of CPU time (all threads of each process). `--profile` adds kdet
inference cut after each stage, timed after the table.

Usage:
    python benchmarks/mask_rcnn_speed.py [--rounds 5] [--warmup 2] [--tfod_python PATH]
        [--torch_python PATH] [--torch_threads 1] [--profile]
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent),
                str(pathlib.Path(__file__).resolve().parents[1])]
from ssd_speed import TorchWorker
from ssd_speed import describe_machine
from ssd_speed import photos
from ssd_speed import print_table
from ssd_speed import synthetic_groundtruth
from ssd_speed import time_interleaved
from ssd_speed import timed
from versus import time_versus
from versus import versus_cases
from versus import versus_rows

from kdet.configs.model_builder import build_model_from_text

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "tfod_configs" / "samples" / "mask_rcnn_resnet50_atrous_coco.config"
SIZE = 512
TRAIN_BATCH_SIZE = 2
NUM_CLASSES = 90
MAX_PROPOSALS = 300
SECOND_STAGE_BATCH_SIZE = 64
MAX_DETECTIONS = 100
LEARNING_RATE = 0.0003
MOMENTUM = 0.9

# (sample text, replacement): each must occur exactly once in the sample config.
EDITS = (
    ("keep_aspect_ratio_resizer {\n        min_dimension: 800\n        max_dimension: 1365\n      }",
     f"fixed_shape_resizer {{\n        height: {SIZE}\n        width: {SIZE}\n      }}"),
    ("type: 'faster_rcnn_resnet50'", "type: 'faster_rcnn_resnet50_keras'"),
    ("first_stage_features_stride: 8", "first_stage_features_stride: 16"),
    ("height_stride: 8", "height_stride: 16"),
    ("width_stride: 8", "width_stride: 16"),
    ("    first_stage_atrous_rate: 2\n", ""),
    (f"first_stage_max_proposals: {MAX_PROPOSALS}",
     (f"first_stage_max_proposals: {MAX_PROPOSALS}\n"
      f"    second_stage_batch_size: {SECOND_STAGE_BATCH_SIZE}")),
    ("max_detections_per_class: 100", f"max_detections_per_class: {MAX_DETECTIONS}"),
    ("max_total_detections: 300", f"max_total_detections: {MAX_DETECTIONS}"),
)

# Runs in the TF OD API venv: one case name per line on stdin ("train", "infer"); the wall and
# CPU seconds back.
TFOD_WORKER = r"""
import json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf
from google.protobuf import text_format
from object_detection.builders import model_builder
from object_detection.protos import pipeline_pb2
from object_detection.utils import ops
spec = json.loads(sys.argv[1])
pipeline = pipeline_pb2.TrainEvalPipelineConfig()
text_format.Merge(spec["config"], pipeline)
tf.keras.utils.set_random_seed(0)
train_model = model_builder.build(pipeline.model, is_training=True)
infer_model = model_builder.build(pipeline.model, is_training=False)
images = tf.constant(np.load(spec["images"]), tf.float32)
masks = np.load(spec["masks"])
train_images = images[: spec["train_batch_size"]]
counts = [len(c) for c in spec["labels"]]
boxes = [tf.constant(b, tf.float32) for b in spec["boxes"]]
classes = [tf.one_hot(tf.constant(c) - 1, spec["num_classes"]) for c in spec["labels"]]
mask_list = [tf.constant(masks[i, :n], tf.float32) for i, n in enumerate(counts)]
weights = [tf.ones([n], tf.float32) for n in counts]
optimizer = tf.keras.optimizers.SGD(spec["learning_rate"], momentum=spec["momentum"])
preprocessed, true_shapes = train_model.preprocess(train_images)

@tf.function
def train_step():
    # As model_lib_v2's train step.
    tf.keras.backend.set_learning_phase(True)
    train_model.provide_groundtruth(groundtruth_boxes_list=boxes,
                                    groundtruth_classes_list=classes,
                                    groundtruth_masks_list=mask_list,
                                    groundtruth_weights_list=weights)
    with tf.GradientTape() as tape:
        prediction = train_model.predict(preprocessed, true_shapes)
        losses = train_model.loss(prediction, true_shapes)
        total = tf.add_n(list(losses.values()) + train_model.regularization_losses())
    variables = train_model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    return losses

@tf.function
def detect(image):
    tf.keras.backend.set_learning_phase(False)
    shapes_in, shapes = infer_model.preprocess(image)
    detections = infer_model.postprocess(infer_model.predict(shapes_in, shapes), shapes)
    # As its evaluation pastes them (eval_util): box masks into image masks.
    detections["image_masks"] = ops.reframe_box_masks_to_image_masks(
        detections["detection_masks"][0], detections["detection_boxes"][0],
        tf.shape(image)[1], tf.shape(image)[2])
    return detections

infer_image = images[:1]
losses = {k: float(v) for k, v in train_step().items()}
if not any("mask_loss" in k for k in losses):
    raise SystemExit(f"the TF OD API training step has no mask loss: {sorted(losses)}")
shapes = {k: v.shape.as_list() for k, v in detect(infer_image).items()
          if k in ("detection_masks", "image_masks")}
cases = {"train": lambda: train_step(),
         "infer": lambda: detect(infer_image)["image_masks"].numpy()}
print(json.dumps({"tf": tf.__version__, "losses": losses, "shapes": shapes,
                  "params": sum(int(np.prod(v.shape)) for v in train_model.trainable_variables)}),
      flush=True)
for line in sys.stdin:
    start, cpu = time.perf_counter(), time.process_time()
    cases[line.strip()]()
    print(json.dumps([time.perf_counter() - start, time.process_time() - cpu]), flush=True)
"""

# Runs in the torchvision venv: the same protocol.
TORCH_WORKER = r"""
import json, sys, time
import numpy as np, torch, torchvision
from torchvision.models import detection
spec = json.loads(sys.argv[1])
if spec["threads"]:
    torch.set_num_threads(spec["threads"])
torch.manual_seed(0)
model = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                        num_classes=spec["num_classes"] + 1, **spec["kwargs"])
optimizer = torch.optim.SGD(model.parameters(), lr=spec["learning_rate"],
                            momentum=spec["momentum"])
images = [torch.from_numpy(a).permute(2, 0, 1).float() / 255.0 for a in np.load(spec["images"])]
masks = np.load(spec["masks"])
targets = [{"boxes": torch.tensor(b, dtype=torch.float32), "labels": torch.tensor(l),
            "masks": torch.from_numpy(masks[i, :len(l)])}
           for i, (b, l) in enumerate(zip(spec["boxes_xyxy"], spec["labels"]))]

def train():
    model.train()
    optimizer.zero_grad()
    losses = model(images[:spec["train_batch_size"]], targets)
    sum(losses.values()).backward()
    optimizer.step()
    return losses

def infer():
    model.eval()
    with torch.no_grad():
        return model(images[:1])

losses = {k: float(v) for k, v in train().items()}
shapes = {k: list(v.shape) for k, v in infer()[0].items()}
print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                  "threads": torch.get_num_threads(), "losses": losses, "shapes": shapes}),
      flush=True)
cases = {"train": train, "infer": infer}
for line in sys.stdin:
    start, cpu = time.perf_counter(), time.process_time()
    cases[line.strip()]()
    print(json.dumps([time.perf_counter() - start, time.process_time() - cpu]), flush=True)
"""


def edit_config(text, source):
    """The sample config with `EDITS` applied; each edit's text must occur exactly once."""
    for old, new in EDITS:
        if text.count(old) != 1:
            raise ValueError(f"{source}: expected {old!r} exactly once, found it "
                             f"{text.count(old)} times; pass the mask_rcnn_resnet50_atrous_coco "
                             f"sample config")
        text = text.replace(old, new)
    return text


def ellipse_masks(boxes, labels, size):
    """uint8 `[B, N, size, size]`: the ellipse inscribed in each valid `yxyx` pixel box."""
    rows, cols = np.mgrid[:size, :size] + 0.5
    masks = np.zeros(labels.shape + (size, size), np.uint8)
    for index in zip(*np.nonzero(labels > 0)):
        y_min, x_min, y_max, x_max = boxes[index]
        center_y, center_x = (y_min + y_max) / 2, (x_min + x_max) / 2
        radius_y, radius_x = (y_max - y_min) / 2, (x_max - x_min) / 2
        masks[index] = ((rows - center_y) / radius_y) ** 2 + ((cols - center_x) / radius_x) ** 2 <= 1
    return masks


def stage_cases(model, tensor):
    """kdet inference cut after each stage, `{name: case}`."""
    stages = {
        "+ RPN, proposals (= features + first stage)": lambda images: model._first_stage(
            images, False
        )["proposals"],
        "+ RoI crops, box classifier": lambda images: model._stage_outputs(
            model._first_stage(images, False), False
        )["class_logits"],
        "+ post-processing, mask head, pasting = detect": lambda images: model.detect(images)[
            "masks"
        ],
    }
    cases = {}
    for stage, function in stages.items():
        function = tf.function(function)
        cases[stage] = timed(lambda function=function: tf.nest.map_structure(
            lambda t: t.numpy(), function(tensor)
        ))
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls of each case")
    parser.add_argument("--config", default=str(SAMPLE))
    parser.add_argument("--tfod_python", default="/work/tfod_ref/venv/bin/python")
    parser.add_argument("--torch_python", default=os.environ.get("KDET_TORCH_PYTHON"),
                        help="python of a venv with torch + torchvision")
    parser.add_argument("--torch_threads", type=int, default=1,
                        help="torch.set_num_threads; 0 = torch's default")
    parser.add_argument("--profile", action="store_true",
                        help="add kdet inference times cut after each stage")
    args = parser.parse_args(argv)
    print(describe_machine(), flush=True)
    config = edit_config(pathlib.Path(args.config).read_text(), args.config)

    images = photos(TRAIN_BATCH_SIZE, SIZE, SIZE)
    boxes, labels = synthetic_groundtruth(TRAIN_BATCH_SIZE, SIZE)
    masks = ellipse_masks(boxes, labels, SIZE)
    valid = labels > 0
    workers = {}
    with tempfile.TemporaryDirectory() as workdir:
        paths = {"images": str(pathlib.Path(workdir) / "images.npy"),
                 "masks": str(pathlib.Path(workdir) / "masks.npy")}
        np.save(paths["images"], images)
        np.save(paths["masks"], masks)
        common = {**paths, "labels": [l[v].tolist() for l, v in zip(labels, valid)],
                  "num_classes": NUM_CLASSES, "train_batch_size": TRAIN_BATCH_SIZE,
                  "learning_rate": LEARNING_RATE, "momentum": MOMENTUM}
        # Each worker has read the files once it reports its versions.
        workers["TF OD API"] = TorchWorker(args.tfod_python, TFOD_WORKER, {
            **common, "config": config,
            "boxes": [(b[v] / SIZE).tolist() for b, v in zip(boxes, valid)],
        })
        info = workers["TF OD API"].info
        print(f"TF OD API (TF {info['tf']}): {info['params'] / 1e6:.2f} M trainable values, "
              f"losses {info['losses']}, outputs {info['shapes']}", flush=True)
        if args.torch_python and pathlib.Path(args.torch_python).is_file():
            workers["torchvision"] = TorchWorker(args.torch_python, TORCH_WORKER, {
                **common, "threads": args.torch_threads,
                "boxes_xyxy": [b[v][:, [1, 0, 3, 2]].tolist() for b, v in zip(boxes, valid)],
                "kwargs": {"min_size": SIZE, "max_size": SIZE,
                           "rpn_post_nms_top_n_train": MAX_PROPOSALS,
                           "rpn_post_nms_top_n_test": MAX_PROPOSALS,
                           "box_batch_size_per_image": SECOND_STAGE_BATCH_SIZE,
                           "box_detections_per_img": MAX_DETECTIONS,
                           "box_score_thresh": 0.0},
            })
            info = workers["torchvision"].info
            print(f"torch {info['torch']}, torchvision {info['torchvision']}, "
                  f"{info['threads']} threads: losses {info['losses']}, outputs {info['shapes']}",
                  flush=True)
        else:
            print("torchvision skipped: pass --torch_python or set $KDET_TORCH_PYTHON")

    keras.utils.set_random_seed(0)
    model = build_model_from_text(config, args.config)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM))
    y = {"boxes": boxes, "labels": labels, "masks": masks}
    cases, outputs = versus_cases(model, images, y, workers, detect_output="masks")
    print(f"kdet {type(model).__name__}: {len(model.trainable_weights)} trainable arrays, "
          f"{sum(int(np.prod(w.shape)) for w in model.trainable_weights) / 1e6:.2f} M values, "
          f"losses {model.train_on_batch(images, y, return_dict=True)}, masks "
          f"{outputs['masks'].shape}", flush=True)

    def logged(name, case):
        def run():
            wall, cpu = case()
            print(f"    {name}: {wall:.2f} s, CPU {cpu:.2f} s", flush=True)
            return wall, cpu
        return run

    cases = {kind: {name: logged(f"{kind} {name}", case) for name, case in kind_cases.items()}
             for kind, kind_cases in cases.items()}
    try:
        times, _ = time_versus(cases, workers, args.rounds, warmup=args.warmup)
    finally:
        for worker in workers.values():
            worker.close()

    print(f"\n## Mask R-CNN ResNet-50 {SIZE}x{SIZE}: kdet vs {' and '.join(workers)}, median "
          f"of {args.rounds} rounds\n")
    names = ["kdet", *workers]
    print_table(["case", *names, *[f"kdet / {n}" for n in names[1:]]],
                versus_rows(times, kinds=("train", "infer"), clocks=("wall s", "CPU s")))
    if args.profile:
        image = tf.constant(images[:1], tf.float32)
        stages = time_interleaved(stage_cases(model, image), args.rounds, warmup=args.warmup)
        print()
        print_table(["kdet inference, batch 1, cut after", "wall ms", "CPU ms"],
                    [[stage, *[f"{1000 * statistics.median(t[c] for t in pairs):.0f}"
                               for c in (0, 1)]] for stage, pairs in stages.items()])


if __name__ == "__main__":
    main()
