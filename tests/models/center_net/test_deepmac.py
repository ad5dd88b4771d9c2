"""DeepMAC instance masks of `kdet.CenterNet` (TF OD API `deepmac_mask_estimation`): a tiny
model learns masks and predicts them in image pixels, the mask networks, the loss's class
filter, the DeepMAC fields of the four TF OD API DeepMAC sample configs and what kdet refuses."""

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
from tiny_center_net import TinyCenterNetExtractor

import kdet
from kdet.configs.field_reader import Node
from kdet.configs.model_builder import build_model_from_text
from kdet.configs.model_builder.center_net import build_deepmac_mask_task
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.losses import WeightedDiceClassificationLoss
from kdet.models.center_net import DeepMACMaskNetwork
from kdet.models.center_net import DeepMACMaskTask
from kdet.training import FusedAdam

DATA = pathlib.Path(__file__).resolve().parents[2] / "data"
_DEEPMAC_CONFIGS = DATA / "tfod_reference" / "deepmac_configs"
SAMPLE_CONFIGS = [  # the 512 one first
    _DEEPMAC_CONFIGS / "center_net_deepmac_512x512_voc_only_tpu-32.config",
    *sorted(_DEEPMAC_CONFIGS.glob("*1024*.config")),
]
SIZE = 64
HEAD = [16]


def tiny_model(**task_arguments):
    task = DeepMACMaskTask(**{
        "dim": 8, "pixel_embedding_dim": 8, "mask_size": 16, "network_type": "resnet4",
        "num_init_channels": 4, "embedding_head_num_filters": HEAD, **task_arguments,
    })
    return kdet.CenterNet(
        2, TinyCenterNetExtractor(filters=16), kdet.layers.FixedShapeResizer(SIZE, SIZE),
        mask_task=task, center_head_num_filters=HEAD, scale_head_num_filters=HEAD,
        offset_head_num_filters=HEAD, max_box_predictions=10,
    )


def ellipses(num_images, seed=0):
    """Images of two ellipses each (class 1 bright, class 2 darker; one padding row), their
    boxes, labels and masks."""
    random = np.random.default_rng(seed)
    images = random.uniform(0, 40, (num_images, SIZE, SIZE, 3)).astype("float32")
    boxes = np.full((num_images, 3, 4), -1.0, "float32")
    labels = np.full((num_images, 3), -1, "int32")
    masks = np.zeros((num_images, 3, SIZE, SIZE), "uint8")
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    for image in range(num_images):
        for index in range(2):
            top, left = random.integers(0, SIZE // 2, 2)
            height, width = random.integers(16, SIZE // 2, 2)
            inside = (((rows - top - height / 2) / (height / 2)) ** 2
                      + ((columns - left - width / 2) / (width / 2)) ** 2) < 1
            boxes[image, index] = [top, left, top + height, left + width]
            labels[image, index] = index + 1
            masks[image, index] = inside
            images[image][inside] = 220 - 100 * index
    return images, {"boxes": boxes, "labels": labels, "masks": masks}


@pytest.fixture(scope="module")
def trained():
    """A tiny DeepMAC CenterNet (resnet4 mask network) after 6 steps on 4 images, and the
    history of its losses."""
    images, y = ellipses(4)
    model = tiny_model()
    model.compile(optimizer=FusedAdam(1e-2))
    return model, model.fit(images, y, epochs=6, batch_size=4, verbose=0).history


def test_tiny_deepmac_learns_masks_and_predicts_them_in_image_pixels(trained):
    model, history = trained
    mask_losses = history["deep_mask_estimation_loss"]
    assert mask_losses[-1] < 0.6 * mask_losses[0], mask_losses
    detections = {key: value.numpy()
                  for key, value in model.detect(np.zeros((1, 48, 80, 3), "uint8")).items()}
    assert detections["box_masks"].shape == (1, 10, 16, 16)
    assert detections["masks"].shape == (1, 10, 48, 80)  # the given image's pixels
    padding = detections["labels"][0] <= 0
    assert np.all(detections["masks"][0][padding] == 0.0)
    assert np.all((detections["box_masks"] >= 0.0) & (detections["box_masks"] <= 1.0))
    clone = kdet.CenterNet.from_config(model.get_config())
    assert clone.mask_task.get_config() == model.mask_task.get_config()


def test_tflite_export_refuses_deepmac_masks(trained, tmp_path):
    with pytest.raises(ValueError, match="DeepMAC masks, whose per-box feature crops"):
        kdet.export.export_tflite(trained[0], tmp_path / "model.tflite")
    assert not (tmp_path / "model.tflite").exists()


def test_mask_loss_counts_only_allowed_classes(trained):
    model, _ = trained
    images, y = ellipses(2, seed=1)
    inputs = model.groundtruth_to_relative(images, y)
    extras = model.groundtruth_extras(images, y)

    def mask_loss(allowed):
        model.mask_task.allowed_masked_classes_ids = allowed
        outputs = model.forward_train(images, *inputs, training=False, **extras)
        return float(model.compute_losses(outputs, *inputs, **extras)[
            DeepMACMaskTask.loss_name])

    everything, first, second = mask_loss([]), mask_loss([1]), mask_loss([2])
    assert mask_loss([3]) == 0.0
    model.mask_task.allowed_masked_classes_ids = []
    # Each is the mean of its objects' losses: the mean of all is the mean of both means.
    assert first > 0.0 and second > 0.0
    np.testing.assert_allclose(everything, (first + second) / 2.0, rtol=1e-5)


# The other hourglasses and resnets are these with more blocks; resnet4 and fully_connected
# are compared with the TF OD API below.
@pytest.mark.parametrize("network_type", ["hourglass10", "embedding_projection"])
def test_mask_networks_give_one_logit_map_per_instance(network_type):
    projection = network_type == "embedding_projection"
    network = DeepMACMaskNetwork(network_type, num_init_channels=2, mask_size=32,
                                 use_instance_embedding=not projection)
    clone = DeepMACMaskNetwork.from_config(network.get_config())
    assert clone.get_config() == network.get_config()
    logits = network(tf.ones([3, 6]), tf.ones([3, 32, 32, 6]), training=False)
    assert logits.shape == (3, 32, 32)


def test_dice_loss_of_a_perfect_and_an_empty_mask():
    targets = tf.constant([[[1.0], [0.0]], [[1.0], [1.0]]])
    logits = tf.constant([[[50.0], [-50.0]], [[-50.0], [-50.0]]])
    losses = WeightedDiceClassificationLoss()(logits, targets, tf.ones([2, 2]))
    np.testing.assert_allclose(losses, [0.0, 1.0], atol=1e-6)


def model_message(path):
    """The `model { center_net { … } }` part of a config file's text."""
    text = path.read_text()
    return text[text.index("model {"):text.index("train_config")]


@pytest.mark.parametrize("path", SAMPLE_CONFIGS, ids=lambda path: path.name)
def test_sample_configs_read_their_deepmac(path):
    # Only the mask task: a model of each would build Hourglass-104 (~70 s) and a 47 M
    # parameter hourglass100 mask network (5 s). The whole configs train full size in
    # benchmarks/sample_configs_status.py --train.
    (meta_architecture,) = parse(model_message(path)).first("model").fields
    message = meta_architecture.value.first("deepmac_mask_estimation")
    task = build_deepmac_mask_task(Node(message, "model.center_net.deepmac_mask_estimation"))
    assert (task.dim, task.pixel_embedding_dim, task.mask_size, task.task_loss_weight) == (
        32, 16, 32, 5.0)
    assert task.use_xy and task.use_instance_embedding and task.num_init_channels == 64
    assert isinstance(task.classification_loss, kdet.losses.WeightedSigmoidClassificationLoss)
    assert task.network_type == ("hourglass52" if "512x512" in path.name else "hourglass100")
    assert task.use_only_last_stage == ("512x512" in path.name)
    expected = {"coco": 0, "non_voc": 60, "_voc_only": 20}
    kind = next(key for key in expected if key in path.name)
    assert len(task.allowed_masked_classes_ids) == expected[kind]


def test_jittered_target_boxes_in_training_only():
    (meta_architecture,) = parse(model_message(SAMPLE_CONFIGS[0]).replace(
        "deepmac_mask_estimation {",
        "deepmac_mask_estimation {\n max_roi_jitter_ratio: 0.2 jitter_mode: EXPAND",
    )).first("model").fields
    message = meta_architecture.value.first("deepmac_mask_estimation")
    task = build_deepmac_mask_task(Node(message, "model.center_net.deepmac_mask_estimation"))
    assert (task.max_roi_jitter_ratio, task.jitter_mode) == (0.2, "EXPAND")
    boxes = tf.constant([[[0.2, 0.2, 0.6, 0.8], [0.1, 0.3, 0.5, 0.4]]])
    assert task.target_boxes(boxes, training=False) is boxes
    jittered = task.target_boxes(boxes, training=True).numpy()
    assert jittered.shape == (1, 2, 4) and not np.allclose(jittered, boxes)
    # EXPAND: each box grows, by at most 10% of its size a side.
    size = np.tile(boxes.numpy()[..., 2:] - boxes.numpy()[..., :2], 2)
    growth = (jittered - boxes.numpy()) * np.array([-1, -1, 1, 1])
    assert np.all(growth >= -1e-6) and np.all(growth <= 0.1 * size + 1e-6)


@pytest.mark.parametrize("field, message", [
    ("box_consistency_loss_weight: 1.0", "box_consistency_loss_weight.*box consistency loss"),
    ('network_type: "cond_inst1"', "network_type' is 'cond_inst1'"),
    ("mask_num_subsamples: 8", "mask_num_subsamples"),
    ("predict_full_resolution_masks: true", "predict_full_resolution_masks"),
])
def test_what_kdet_does_not_do_is_refused_at_its_field(field, message):
    text = model_message(SAMPLE_CONFIGS[0])
    text = re.sub(r"network_type: \S+", "", text)
    text = text.replace("deepmac_mask_estimation {", f"deepmac_mask_estimation {{\n {field}")
    with pytest.raises(ConfigError, match=message):
        build_model_from_text(text)


def test_keypoint_tasks_with_deepmac_are_refused():
    text = model_message(SAMPLE_CONFIGS[0]).replace(
        "deepmac_mask_estimation {",
        'keypoint_estimation_task { task_name: "pose" keypoint_class_name: "person" }\n'
        "    deepmac_mask_estimation {",
    )
    with pytest.raises(ConfigError, match="keypoint_estimation_task' with deepmac"):
        build_model_from_text(text)


@pytest.mark.parametrize("network_type", ["resnet4", "fully_connected"])
def test_mask_logits_match_the_tfod_api(network_type):
    # tools/tfod_reference/make_deepmac_references.py: the TF OD API's crop, coordinates,
    # center embeddings and mask network, on the same embeddings, boxes and weights.
    reference = np.load(DATA / "tfod_reference" / "deepmac_mask_head" / "outputs.npz")
    expected = reference[f"{network_type}/logits"]
    task = DeepMACMaskTask(dim=6, pixel_embedding_dim=4, mask_size=expected.shape[-1],
                           network_type=network_type,
                           num_init_channels=2 if network_type == "resnet4" else 1)
    network = task.make_mask_network()
    layers = {"input_conv": network.input_conv}
    if network_type == "fully_connected":
        layers.update(fc1=network.hidden, fc2=network.logits)
    else:
        layers["project_out"] = network.project_out
        layers.update({layer.name: layer for layer in network.resnet.layers if layer.weights})
    prefix = f"{network_type}/"
    names = {key[len(prefix):].rsplit("/", 1)[0] for key in reference if key.startswith(prefix)}
    assert names - {"logits"} == set(layers)
    for name, layer in layers.items():
        layer.set_weights([reference[f"{prefix}{name}/{index}"]
                           for index in range(len(layer.weights))])
    logits = task.mask_logits(network, reference["pixel_embedding"],
                              reference["instance_embedding"], reference["boxes"],
                              training=False)
    np.testing.assert_allclose(logits, expected, atol=1e-4)
