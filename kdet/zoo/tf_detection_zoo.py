"""The TF OD API's TF1 and TF2 detection model zoos, as `TFZooEntry` records.

`tf_detection_zoo.json` (next to this module) holds one record per row of the two zoo pages of
tensorflow/models (`research/object_detection/g3doc/tf1_detection_zoo.md`,
`tf2_detection_zoo.md`, at the commits and date its `sources` name), written by
`benchmarks/make_tf_detection_zoo_catalog.py`: the archive URL, the page's speed and mAP
columns (the source's numbers, not measured by kdet), outputs, input size and architecture.

Whether kdet builds a model is decided now, not stored: the record's meta-architecture,
feature extractor and variants (instance masks, keypoints, R-FCN, Context R-CNN) make a
`model { … }` block that goes through `kdet.configs.model_builder.check_architecture`, and the
feature extractor must be registered in kdet. Once an archive is downloaded, its own
`pipeline.config` is what `kdet.zoo.load` builds.
"""

import dataclasses
import functools
import json
import pathlib

CATALOG_FILE = pathlib.Path(__file__).with_name("tf_detection_zoo.json")
SOURCES = ("tf1", "tf2")
# The kdet zoo entry whose label map is the TF OD API's COCO one (90 ids, 80 used), which the
# zoos' COCO models predict.
COCO_LABEL_MAP_ENTRY = "ssd_mobilenet_v2_coco"
COCO_NUM_CLASSES = 90
METRICS_NOTE = (
    "speed and mAP are the TF OD API zoo page's numbers (its hardware, its evaluation); kdet "
    "did not measure them"
)
# `model { <meta> { … } }` fields that ask for each variant, as `check_architecture` reads them.
_VARIANT_FIELDS = {
    ("faster_rcnn", "instance_masks"): "number_of_stages: 3",
    ("faster_rcnn", "rfcn"): "second_stage_box_predictor { rfcn_box_predictor { } }",
    ("faster_rcnn", "context_rcnn"): "context_config { }",
    ("ssd", "instance_masks"): "box_predictor { mask_head_config { } }",
    ("center_net", "instance_masks"): "mask_estimation_task { }",
    ("center_net", "keypoints"): "keypoint_estimation_task { }",
}


@dataclasses.dataclass(frozen=True)
class TFZooEntry:
    """One model of the TF OD API's TF1 or TF2 detection zoo.

    Attributes:
        name: str, the archive's file name without `.tar.gz` (with the archive's folder
            appended when two archives share a name), e.g.
            `"ssd_mobilenet_v2_320x320_coco17_tpu-8"`.
        title: str, the model name of the zoo page's table, as written there.
        source: `"tf1"` or `"tf2"`, the zoo page.
        url: str, the archive's URL.
        dataset: str, what it was trained on (`"COCO"`, `"COCO 2017"`, `"KITTI"`, ...).
        columns: dict, the table's cells (speed, mAP), verbatim.
        speed_ms: float or None, the first `(ms)` column (`speed_column` says which).
        speed_column: str or None.
        metric: str, the mAP column's name, e.g. `"COCO mAP"`, `"Pascal mAP@0.5"`.
        map: dict, its numbers by what they measure: `box`, `mask`, `keypoint`, `box_uint8`
            (the source's numbers; empty when the page gives none or does not say which).
        outputs: tuple of str, e.g. `("Boxes", "Keypoints")`.
        config: str or None, the URL of the TF OD API sample config of the same model.
        architecture_from: `"config"` (that sample config) or `"name"` (the model's name).
        architecture: dict with `meta_architecture` (`"ssd"`, `"faster_rcnn"`,
            `"center_net"`), `feature_extractor` (a TF OD API type, or None) and `variants`.
        input_size: dict or None: `{"type": "fixed_shape", "height", "width"}` or
            `{"type": "keep_aspect_ratio", "min_dimension", "max_dimension"}`.
    """

    name: str
    title: str
    source: str
    url: str
    dataset: str
    columns: dict
    speed_ms: float
    speed_column: str
    metric: str
    map: dict
    outputs: tuple
    config: str
    architecture_from: str
    architecture: dict
    input_size: dict

    @property
    def archive_name(self):
        """str, the archive's file name, e.g. `"ssd_mobilenet_v2_coco_2018_03_29.tar.gz"`."""
        return self.url.rsplit("/", 1)[1]

    @property
    def num_classes(self):
        """int or None: 90 for the COCO models (the TF OD API's COCO ids), else None (the
        archive's pipeline.config says)."""
        return COCO_NUM_CLASSES if self.dataset.startswith("COCO") else None

    @property
    def label_map(self):
        """dict `{id: name}` of the COCO models (90 ids, 80 names); None for the others, whose
        archives carry no label map."""
        if self.num_classes is None:
            return None
        from kdet.zoo.zoo import get_entry  # kdet.zoo.zoo imports this module

        return get_entry(COCO_LABEL_MAP_ENTRY).label_map

    @property
    def input_size_text(self):
        """str, e.g. `"320x320"` or `"600-1024"` (shorter-longer side, aspect kept); `"?"`."""
        size = self.input_size
        if size is None:
            return "?"
        if size["type"] == "fixed_shape":
            return f"{size['height']}x{size['width']}"
        return f"{size['min_dimension']}-{size['max_dimension']}"

    @property
    def metadata(self):
        """dict: the catalog record, with `metrics_note` (the numbers are the source's)."""
        record = dataclasses.asdict(self)
        record["outputs"] = list(self.outputs)
        return {**record, "metrics_note": METRICS_NOTE, "sources": read_catalog()["sources"]}

    @property
    def description(self):
        """str, one line: the title, source and dataset."""
        return f"{self.source.upper()} detection zoo: {self.title} ({self.dataset})"

    def model_config_text(self):
        """The `model { … }` block (protobuf text) of this model's architecture: its
        meta-architecture, feature extractor type and the fields of its variants."""
        meta = self.architecture["meta_architecture"]
        extractor = self.architecture["feature_extractor"]
        fields = [f'feature_extractor {{ type: "{extractor}" }}'] if extractor else []
        fields += [_VARIANT_FIELDS[meta, variant] for variant in self.architecture["variants"]]
        return f"model {{ {meta} {{ {' '.join(fields)} }} }}"

    def kdet_support(self):
        """Why kdet cannot build this model yet, or None when it can.

        `check_architecture` runs on `model_config_text()`; then the feature extractor must be
        registered in kdet (by its TF OD API type, with or without `_keras`).

        Returns:
            None, or str: the reason, e.g. `"'model.center_net': CenterNet is not in kdet yet
            (issue 18); ..."`.
        """
        from kdet.configs.model_builder import check_architecture
        from kdet.configs.model_builder.feature_extractor import KERAS_SUFFIX
        from kdet.configs.text_format import ConfigError
        from kdet.configs.text_format import parse
        from kdet.feature_extractors import available_feature_extractors

        try:
            check_architecture(parse(self.model_config_text(), source=self.name))
        except ConfigError as error:
            return str(error).split(": ", 1)[1]
        extractor = self.architecture["feature_extractor"]
        if extractor is None:
            return f"the feature extractor of {self.name} is not known from its name"
        registered = available_feature_extractors()
        if extractor not in registered and extractor.removesuffix(KERAS_SUFFIX) not in registered:
            return f"feature extractor '{extractor}' is not in kdet"
        return None

    @property
    def kdet_can_build(self):
        """bool: whether kdet builds this model's architecture today (`kdet_support`)."""
        return self.kdet_support() is None


@functools.cache
def read_catalog():
    """The catalog file: `{"models": {name: TFZooEntry}, "sources": {...}, ...}`, read once."""
    with open(CATALOG_FILE, encoding="utf-8") as file:
        catalog = json.load(file)
    models = {}
    for record in catalog["models"]:
        entry = TFZooEntry(**{**record, "outputs": tuple(record["outputs"])})
        if entry.name in models:
            raise ValueError(f"{CATALOG_FILE}: model {entry.name!r} is listed twice.")
        models[entry.name] = entry
    return {**catalog, "models": models}


def tf_zoo_names(source=None):
    """Names of the TF detection zoo models, in the zoo pages' order.

    Args:
        source: `"tf1"`, `"tf2"` or None (both).

    Returns:
        list of str.
    """
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES} or None; got {source!r}")
    return [name for name, entry in read_catalog()["models"].items()
            if source in (None, entry.source)]


def get_tf_zoo_entry(name):
    """The `TFZooEntry` of a TF detection zoo model; a `KeyError` for another name."""
    return read_catalog()["models"][name]
