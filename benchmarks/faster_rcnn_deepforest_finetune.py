"""Fine-tunes a COCO-initialized `kdet.FasterRCNN` (MobileNetV2) into a tree-crown detector.

The protocol of `ssd_deepforest_finetune.py`, whose data and evaluation functions it reuses, so
the two numbers sit side by side: train on random crops of the bundled deepforest tile
`OSBS_029` (61 "Tree" boxes), report Pascal VOC AP@0.5 on the held-out tile `SOAP_061` (37
boxes, "Alive" and "Dead" both counted as "Tree"), on the whole tile and on overlapping
200x200 tiles. The model is `kdet.FasterRCNN(num_classes=1,
feature_extractor="faster_rcnn_mobilenet_v2")` at 300x300; its MobileNetV2 body starts from the
COCO-trained body of the zoo's `ssd_mobilenet_v2_coco` (restored by layer name), its RPN and
box classifier heads from their initializers.

Run: `python benchmarks/faster_rcnn_deepforest_finetune.py` (about 9 minutes on a loaded 2-core
CPU; `--optimizer adam --learning_rate 2e-4` for the Adam row). See `benchmarks/README.md` for
the recorded results: so far this recipe does NOT give a useful tree detector (AP@0.5 <= 0.04;
the RPN learns, the box classifier stays near its prior). Needs `kdet[zoo]`.
"""

import argparse
import time

import keras

import kdet
import kdet.zoo
from kdet.layers import GridAnchorGenerator
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from ssd_deepforest_finetune import MODEL_SIZE
from ssd_deepforest_finetune import add_training_arguments
from ssd_deepforest_finetune import build_optimizer
from ssd_deepforest_finetune import evaluate
from ssd_deepforest_finetune import fine_tune
from ssd_deepforest_finetune import format_ap

# Trees are 15..80 px in the tile, 20..160 px once a training crop is upscaled to 300x300:
# anchors of 16..128 px at the stride-16 feature map, where the TF OD API default (base 256,
# scales 0.25..2, i.e. 64..512 px) would miss the small crowns.
ANCHOR_GENERATOR = GridAnchorGenerator(
    scales=(0.25, 0.5, 1.0, 2.0),
    aspect_ratios=(0.5, 1.0, 2.0),
    base_anchor_size=(64, 64),
    anchor_stride=(16, 16),
    anchor_offset=(8, 8),
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_arguments(parser, steps=200, batch_size=4, warmup_steps=20, eval_every=50)
    parser.add_argument(
        "--learning_rate", type=float, default=0.01, help="peak (after warm-up)"
    )
    return parser.parse_args()


def build_model():
    """Faster R-CNN MobileNetV2 at 300x300, its body restored from the COCO SSD's."""
    model = kdet.FasterRCNN(
        num_classes=1,
        feature_extractor="faster_rcnn_mobilenet_v2",
        image_resizer=FixedShapeResizer(MODEL_SIZE, MODEL_SIZE),
        first_stage_anchor_generator=ANCHOR_GENERATOR,
        first_stage_max_proposals=100,
        second_stage_batch_size=32,
    )
    coco_body = kdet.zoo.load("ssd_mobilenet_v2_coco").feature_extractor.body
    restored = model.feature_extractor.restore_from_classification_checkpoint(coco_body)
    print(f"restored {len(restored)} MobileNetV2 layers from ssd_mobilenet_v2_coco", flush=True)
    return model


def main():
    args = parse_args()
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    model = build_model()
    ap = evaluate(model)
    print(f"before (new heads): AP@0.5: {format_ap(ap)}", flush=True)

    fine_tune(model, build_optimizer(args), args, start)


if __name__ == "__main__":
    main()
