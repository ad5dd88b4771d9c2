"""The zoo's deepforest tree detector: its recorded metrics, and `kdet predict` with tiles."""

import json

import numpy as np
import pytest

import kdet
from kdet import cli
from kdet.evaluation import compute_pascal_voc_metrics

NAME = "faster_rcnn_mobilenet_v2_deepforest"
AP_KEY = "PascalBoxes_Precision/mAP@0.5IOU"
# metadata.json `split` → (image, Dead trees ignored, tiled).
SPLITS = {
    "SOAP_061 (whole tile)": ("SOAP_061", False, False),
    "SOAP_061 (overlapping 200x200 tiles)": ("SOAP_061", False, True),
    "SOAP_061 Alive (whole tile)": ("SOAP_061", True, False),
    "SOAP_061 Alive (overlapping 200x200 tiles)": ("SOAP_061", True, True),
    "OSBS_029 (train) (whole tile)": ("OSBS_029", False, False),
    "OSBS_029 (train) (overlapping 200x200 tiles)": ("OSBS_029", False, True),
}


@pytest.fixture(scope="module")
def trees():
    return kdet.zoo.load(NAME)


def _ap(model, image_name, ignore_dead, tiled):
    image, y = kdet.datasets.deepforest(image_name)
    if tiled:
        predictions = model.predict_tiled(image, 200, stride=100, iou_threshold=0.5)
    else:
        predictions = model.predict(image[None], verbose=0)
    count = predictions["num_detections"][0]
    detections = {key: predictions[key][0, :count] for key in ("boxes", "labels", "confidences")}
    groundtruth = {"boxes": y["boxes"], "labels": np.ones(len(y["boxes"]), np.int64)}
    if ignore_dead:
        groundtruth["difficult"] = np.array([name == "Dead" for name in y["class_names"]])
    return compute_pascal_voc_metrics([groundtruth], [detections], label_map={1: "Tree"})[AP_KEY]


def test_the_recorded_metrics_are_what_the_zoo_model_gives(trees):
    entry = kdet.zoo.get_entry(NAME)
    assert entry.label_map == {1: "Tree"} and entry.weights["source"] == "file"
    recorded = {metric["split"]: metric["value"] for metric in entry.metadata["metrics"]}
    assert set(recorded) == set(SPLITS)
    for split, (image_name, ignore_dead, tiled) in SPLITS.items():
        assert _ap(trees, image_name, ignore_dead, tiled) == pytest.approx(
            recorded[split], abs=0.002
        ), split
    # Tiles show the small crowns at the scale the model was trained on.
    assert recorded["SOAP_061 (overlapping 200x200 tiles)"] > 0.3
    assert recorded["OSBS_029 (train) (overlapping 200x200 tiles)"] > 0.4


def test_kdet_predict_finds_trees_on_tiles(data_dir, tmp_path, capsys):
    image = data_dir / "deepforest" / "OSBS_029.png"
    code = cli.main([
        "predict", str(image), "--model", NAME, "--tile_size", "200", "--tile_stride", "100",
        "--output_dir", str(tmp_path), "--score_threshold", "0.5",
    ])
    assert code == 0
    assert capsys.readouterr().out.startswith("OSBS_029.png: Tree 0.")
    found = json.loads((tmp_path / "detections.json").read_text())["OSBS_029.png"]
    assert len(found) >= 15 and {d["name"] for d in found} == {"Tree"}
    boxes = np.array([d["box_yxyx"] for d in found])
    assert boxes.min() >= 0 and boxes.max() <= 400
    # Detections from the lower right tiles are mapped back there.
    assert (boxes[:, 0] > 250).any() and (boxes[:, 1] > 250).any()
    assert (tmp_path / "OSBS_029_detections.jpg").is_file()


def test_kdet_predict_tile_options_are_checked(data_dir, tmp_path, capsys):
    image = str(data_dir / "deepforest" / "OSBS_029.png")
    for flags, message in ((["--tile_size", "0"], "--tile_size must be a positive number"),
                           (["--tile_stride", "100"], "--tile_stride needs --tile_size")):
        assert cli.main(["predict", image, "--model", NAME, "--output_dir", str(tmp_path),
                         *flags]) == 2
        assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
