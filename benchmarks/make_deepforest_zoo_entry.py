"""Makes a zoo entry of a tree-crown detector trained by a deepforest fine-tuning benchmark.

Takes the `--save_dir` folder of `faster_rcnn_deepforest_finetune.py` or
`ssd_deepforest_finetune.py` (`config.json` + `model.weights.h5` of the trained model) and a
kdet YAML pipeline config whose model block describes the same architecture. Builds the model
from the pipeline config, copies the trained weights into it (in order, weight by weight, so
the two configs may differ in what holds no weights: the resize method, training-only switches),
measures the benchmark's AP@0.5 numbers with that model, and writes the entry with
`kdet.zoo.write_zoo_entry`: `config.json`, float16 `model.weights.h5`, `label_map.pbtxt`,
`metadata.json` (the measured metrics, the training command) and a copy of the pipeline config
as `pipeline.yaml`.

Run from the repository root, e.g.:
`PYTHONPATH=. python benchmarks/make_deepforest_zoo_entry.py --trained /tmp/frcnn
--pipeline pipeline.yaml --output zoo/faster_rcnn_mobilenet_v2_deepforest
--training_command "python benchmarks/faster_rcnn_deepforest_finetune.py ..."
--metadata description.json`
"""

import argparse
import json
import shutil

import keras

import kdet
import kdet.configs
import kdet.zoo
from ssd_deepforest_finetune import TREE_LABEL_MAP
from ssd_deepforest_finetune import evaluate
from ssd_deepforest_finetune import format_ap


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trained", required=True, help="a benchmark's --save_dir folder")
    parser.add_argument(
        "--pipeline", required=True, help="kdet YAML pipeline config of the architecture"
    )
    parser.add_argument("--output", required=True, help="the new zoo entry folder")
    parser.add_argument("--training_command", required=True, help="how the model was trained")
    parser.add_argument(
        "--metadata", required=True, help="JSON file: description, dataset, license, notes..."
    )
    return parser.parse_args()


def main():
    args = parse_args()
    if not args.pipeline.endswith((".yaml", ".yml")):
        raise SystemExit(f"--pipeline {args.pipeline}: expected a kdet YAML config (.yaml)")
    model = kdet.configs.load_pipeline(args.pipeline).model
    model.build((None, None, None, 3))
    trained = keras.saving.deserialize_keras_object(
        json.load(open(f"{args.trained}/config.json", encoding="utf-8"))
    )
    trained.build((None, None, None, 3))
    trained.load_weights(f"{args.trained}/model.weights.h5")
    # Measured as the zoo will load it: with the weights rounded to the float16 of its file.
    for weight, value in zip(model.weights, trained.weights, strict=True):
        weight.assign(keras.ops.cast(keras.ops.cast(value, "float16"), weight.dtype))

    ap = evaluate(model)
    print(f"the zoo model: AP@0.5: {format_ap(ap)}", flush=True)
    with open(args.metadata, encoding="utf-8") as file:
        metadata = json.load(file)
    metadata["metrics"] = [
        {
            "name": "Pascal VOC AP@0.5",
            "value": round(float(value), 3),
            "split": f"{name} ({'overlapping 200x200 tiles' if mode == 'tiled' else 'whole tile'})",
            "source": "measured by benchmarks/make_deepforest_zoo_entry.py (evaluation of "
            "benchmarks/ssd_deepforest_finetune.py)",
        }
        for (name, mode), value in ap.items()
    ]
    metadata["training"] = {**metadata.get("training", {}), "command": args.training_command}
    entry = kdet.zoo.write_zoo_entry(model, args.output, TREE_LABEL_MAP, metadata)
    shutil.copyfile(args.pipeline, entry.directory / "pipeline.yaml")
    print(f"wrote {entry.directory} ({entry.metadata['num_params']} parameters)", flush=True)


if __name__ == "__main__":
    main()
