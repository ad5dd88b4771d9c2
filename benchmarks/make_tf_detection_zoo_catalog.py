"""Writes `kdet/zoo/tf_detection_zoo.json`: the TF1 and TF2 detection zoos of the TF OD API.

Reads the two zoo pages of tensorflow/models (`research/object_detection/g3doc/
tf1_detection_zoo.md` and `tf2_detection_zoo.md`, downloaded as they are) and the TF OD API's
sample configs, and writes one record per table row: its name, archive URL, the source's speed
and mAP columns (verbatim, plus parsed numbers), outputs, input size and architecture.

Architecture and input size come from the row's sample config when there is one, else from its
name (`architecture_from` says which):

1. the config whose name is the archive's name without its `_YYYY_MM_DD` date
   (`configs/tf2/<name>.config`, then `samples/configs/<name>.config`);
2. else the config of `CONFIG_ALIASES` (the same model under another name: the page's
   `lowproposals` models are their config's model with fewer proposals, EfficientDet's
   configs are named `ssd_efficientdet_dN_<size>`, ...);
3. else `NAME_RULES` (the meta-architecture and TF OD API feature extractor type the name
   says; `None` where the name does not say).

Usage (the configs folder holds `samples/` and `tf2/`, as ../shared/tfod_configs does):

    python benchmarks/make_tf_detection_zoo_catalog.py tf1_detection_zoo.md tf2_detection_zoo.md \
        --configs ../shared/tfod_configs --commit-tf1 SHA --commit-tf2 SHA --retrieved 2026-12-05
"""

import argparse
import json
import pathlib
import re

from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Message
from kdet.configs.text_format import parse_file

REPO = pathlib.Path(__file__).resolve().parents[1]
OUTPUT = REPO / "kdet" / "zoo" / "tf_detection_zoo.json"
PAGE_URL = ("https://github.com/tensorflow/models/blob/{commit}/research/object_detection/g3doc/"
            "{source}_detection_zoo.md")
CONFIG_URL = "https://github.com/tensorflow/models/blob/master/research/object_detection/{path}"
_SAMPLES = "samples/configs"
_TF2 = "configs/tf2"
# Where each config folder of research/object_detection is in the --configs folder.
_LOCAL_FOLDERS = {_TF2: "tf2", _SAMPLES: "samples"}

# Archive name → sample config (relative to research/object_detection) of the same model.
CONFIG_ALIASES = {
    **{
        f"{stem}_lowproposals_{dataset}": f"{_SAMPLES}/{stem}_{dataset}.config"
        for stem, dataset in [
            ("faster_rcnn_resnet50", "coco"), ("faster_rcnn_resnet101", "coco"),
            ("faster_rcnn_inception_resnet_v2_atrous", "coco"), ("faster_rcnn_nas", "coco"),
            ("faster_rcnn_inception_resnet_v2_atrous", "oid"),
        ]
    },
    **{
        f"ssdlite_mobiledet_{kind}_320x320_coco": (
            f"{_SAMPLES}/ssdlite_mobiledet_{kind}_320x320_coco_sync_4x4.config"
        )
        for kind in ("cpu", "dsp", "edgetpu")
    },
    "ssd_mobilenet_v3_large_coco": f"{_SAMPLES}/ssdlite_mobilenet_v3_large_320x320_coco.config",
    "ssd_mobilenet_v3_small_coco": f"{_SAMPLES}/ssdlite_mobilenet_v3_small_320x320_coco.config",
    "ssdlite_mobilenet_edgetpu_coco_quant": (
        f"{_SAMPLES}/ssdlite_mobilenet_edgetpu_320x320_coco_quant.config"
    ),
    "centernet_hg104_1024x1024_coco17_tpu-32": (
        f"{_TF2}/centernet_hourglass104_1024x1024_coco17_tpu-32.config"
    ),
    "centernet_hg104_1024x1024_kpts_coco17_tpu-32": (
        f"{_TF2}/centernet_hourglass104_1024x1024_kpts_coco17_tpu-32.config"
    ),
    **{
        f"efficientdet_d{index}_coco17_tpu-32": (
            f"{_TF2}/ssd_efficientdet_d{index}_{size}x{size}_coco17_tpu-{8 if index < 3 else 32}"
            ".config"
        )
        for index, size in enumerate([512, 640, 768, 896, 1024, 1280, 1408, 1536])
    },
}
# Name pattern → (meta-architecture, TF OD API feature extractor type or None), for the rows
# with no sample config.
NAME_RULES = [
    (r"faster_rcnn_resnet101_(ava_v2\.1|snapshot_serengeti)", ("faster_rcnn",
                                                                "faster_rcnn_resnet101")),
    (r"faster_rcnn_inception_resnet_v2_\d+x\d+_coco17_tpu-8",
     ("faster_rcnn", "faster_rcnn_inception_resnet_v2_keras")),
    (r"centernet_resnet50_v1_fpn_512x512_coco17_tpu-8", ("center_net", "resnet_v1_50_fpn")),
    (r"centernet_mobilenetv2fpn_512x512_coco17_(od|kpts)", ("center_net", "mobilenet_v2_fpn")),
    (r"spaghettinet_edgetpu_[sml]", ("ssd", "ssd_spaghettinet")),
    (r"extremenet(_\d+)?", ("center_net", None)),
]
# Section heading of the TF1 page → the dataset its models were trained on.
TF1_DATASETS = {
    "COCO-trained models": "COCO",
    "Kitti-trained models": "KITTI",
    "Open Images-trained models": "Open Images",
    "iNaturalist Species-trained models": "iNaturalist",
    "AVA v2.1 trained models": "AVA v2.1",
    "Snapshot Serengeti Camera Trap trained models": "Snapshot Serengeti",
    "Pixel 6 Edge TPU models": "COCO 2017",
}
_LINK = re.compile(r"\[(?P<title>[^\]]+)\]\((?P<url>[^)]+\.tar\.gz)\)")
_DATE = re.compile(r"_\d{4}_\d{2}_\d{2}$")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def parse_page(text, source):
    """The rows of every model table of one zoo page, as dicts (see the module docstring)."""
    rows, header, section = [], None, None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if "|" not in line:
            header = None
            continue
        cells = [cell.strip() for cell in line.split("|")]
        if cells[0].startswith("Model name"):
            header = [re.sub(r"\[\^\d+\]", "", cell).strip() for cell in cells]
            continue
        link = _LINK.search(cells[0])
        if header is None or link is None:
            continue
        columns = dict(zip(header[1:], cells[1:], strict=True))
        rows.append(_row(source, section, link, columns))
    return rows


def _row(source, section, link, columns):
    url = link["url"]
    dataset = "COCO 2017" if source == "tf2" else TF1_DATASETS[section]
    outputs = columns.pop("Outputs").split("/")
    speed_column = next((name for name in columns if name.endswith("(ms)")), None)
    metric = next(name for name in columns if "mAP" in name)
    return {
        "name": url.rsplit("/", 1)[1].removesuffix(".tar.gz"),
        "title": link["title"],
        "source": source,
        "url": url,
        "dataset": dataset,
        "columns": columns,
        "speed_ms": _number(columns.get(speed_column, "")),
        "speed_column": speed_column,
        "metric": metric,
        "map": _maps(source, metric, columns[metric], outputs),
        "outputs": outputs,
    }


def _number(text):
    match = _NUMBER.search(text)
    return float(match[0]) if match and text.strip() not in ("", "--", "-") else None


def _maps(source, metric, value, outputs):
    """The mAP numbers of a cell by what they measure (`box`, `mask`, `keypoint`, `box_uint8`).

    The TF1 page reports box mAP only ("we only report bounding box mAP"); its
    `(fp32/uint8)` columns hold two numbers; a TF2 cell `a/b` pairs with `Boxes/Keypoints` or
    `Boxes/Masks`. A single TF2 number on a two-output row does not say what it measures:
    nothing is parsed from it (the verbatim cell stays in `columns`).
    """
    parts = [part.strip() for part in value.split("/")]
    if not value.strip():
        return {}
    if "fp32/uint8" in metric:
        kinds = ["box", "box_uint8"]
    elif "uint8" in metric:
        kinds = ["box_uint8"]
    elif source == "tf1":
        kinds = ["box"]
    elif len(parts) == len(outputs):
        kinds = [{"Boxes": "box", "Masks": "mask", "Keypoints": "keypoint"}[o] for o in outputs]
    else:
        return {}
    return {kind: _number(part) for kind, part in zip(kinds, parts, strict=True)
            if _number(part) is not None}


def _config_path(name, configs):
    stem = _DATE.sub("", name)
    for folder in (_TF2, _SAMPLES):
        if (configs / _LOCAL_FOLDERS[folder] / f"{stem}.config").is_file():
            return f"{folder}/{stem}.config"
    if stem in CONFIG_ALIASES:
        return CONFIG_ALIASES[stem]
    return None


def _local(configs, path):
    folder, name = path.rsplit("/", 1)
    return configs / _LOCAL_FOLDERS[folder] / name


def _architecture_from_config(root):
    """(meta-architecture, feature extractor type, variants, image resizer) of a config."""
    model = root.first("model")
    meta, message = next((f.name, f.value) for f in model.fields if isinstance(f.value, Message))
    extractor = message.first("feature_extractor")
    variants = []
    if message.first("number_of_stages") == 3 or _has(message, "predict_instance_masks"):
        variants.append("instance_masks")
    if _has(message, "rfcn_box_predictor"):
        variants.append("rfcn")
    if message.first("context_config") is not None:
        variants.append("context_rcnn")
    if message.first("keypoint_estimation_task") is not None:
        variants.append("keypoints")
    if message.first("mask_estimation_task") is not None:
        variants.append("instance_masks")
    return meta, extractor.first("type") if extractor else None, variants, _resizer(message)


def _has(message, name):
    """Whether `message` or a message inside it sets `name` (to a value other than false)."""
    for field in message.fields:
        if field.name == name and field.value is not False and field.value != 0:
            return True
        if isinstance(field.value, Message) and _has(field.value, name):
            return True
    return False


def _resizer(message):
    resizer = message.first("image_resizer")
    if resizer is None:
        return None
    fixed = resizer.first("fixed_shape_resizer")
    if fixed is not None:
        return {"type": "fixed_shape", "height": fixed.first("height", 300),
                "width": fixed.first("width", 300)}
    keep = resizer.first("keep_aspect_ratio_resizer")
    if keep is not None:
        return {"type": "keep_aspect_ratio", "min_dimension": keep.first("min_dimension", 600),
                "max_dimension": keep.first("max_dimension", 1024)}
    return None


def _architecture_from_name(name, outputs):
    meta, extractor = next(
        (result for pattern, result in NAME_RULES if re.fullmatch(pattern, _DATE.sub("", name))),
        (None, None),
    )
    variants = []
    if "Masks" in outputs:
        variants.append("instance_masks")
    if "Keypoints" in outputs:
        variants.append("keypoints")
    size = re.search(r"_(\d+)x(\d+)", name)
    resizer = None
    if size and meta == "faster_rcnn":
        resizer = {"type": "keep_aspect_ratio", "min_dimension": int(size[1]),
                   "max_dimension": int(size[2])}
    elif size:
        resizer = {"type": "fixed_shape", "height": int(size[1]), "width": int(size[2])}
    return meta, extractor, variants, resizer


def add_architecture(row, configs):
    """Adds `config`, `architecture`, `architecture_from` and `input_size` to a row."""
    path = _config_path(_DATE.sub("", row["name"]), configs)
    root = None
    if path is not None:
        try:
            root = parse_file(_local(configs, path))
        except ConfigError as error:
            print(f"{row['name']}: {path} does not parse ({error}); architecture from the name")
    if root is not None:
        meta, extractor, variants, resizer = _architecture_from_config(root)
        row["config"] = CONFIG_URL.format(path=path)
        row["architecture_from"] = "config"
    else:
        meta, extractor, variants, resizer = _architecture_from_name(row["name"], row["outputs"])
        row["config"] = None
        row["architecture_from"] = "name"
    row["architecture"] = {"meta_architecture": meta, "feature_extractor": extractor,
                           "variants": sorted(set(variants))}
    row["input_size"] = resizer


def _disambiguate(rows):
    """Rows whose archives share a file name get the archive's folder (a date) appended."""
    counts = {}
    for row in rows:
        counts[row["name"]] = counts.get(row["name"], 0) + 1
    for row in rows:
        if counts[row["name"]] > 1:
            row["name"] = f"{row['name']}_{row['url'].rsplit('/', 2)[1]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tf1_page", type=pathlib.Path)
    parser.add_argument("tf2_page", type=pathlib.Path)
    parser.add_argument("--configs", type=pathlib.Path, required=True)
    parser.add_argument("--commit-tf1", required=True)
    parser.add_argument("--commit-tf2", required=True)
    parser.add_argument("--retrieved", required=True, help="date the pages were read, ISO 8601")
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    rows = []
    for source, page in (("tf1", args.tf1_page), ("tf2", args.tf2_page)):
        rows += parse_page(page.read_text(encoding="utf-8"), source)
    _disambiguate(rows)
    for row in rows:
        add_architecture(row, args.configs)
    catalog = {
        "description": (
            "The TF Object Detection API's TF1 and TF2 detection model zoos, one record per "
            "table row. speed_ms, map and columns are the source's numbers, copied from its "
            "tables: kdet did not measure them. architecture and input_size come from the "
            "row's sample config (architecture_from: config) or its name (architecture_from: "
            "name); see benchmarks/make_tf_detection_zoo_catalog.py."
        ),
        "sources": {
            source: {
                "url": PAGE_URL.format(commit=commit, source=source),
                "commit": commit,
                "retrieved": args.retrieved,
            }
            for source, commit in (("tf1", args.commit_tf1), ("tf2", args.commit_tf2))
        },
        "license": "Apache-2.0 (tensorflow/models); the archives are the TF OD API's",
        "models": rows,
    }
    args.output.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    print(f"{len(rows)} models written to {args.output}")


if __name__ == "__main__":
    main()
