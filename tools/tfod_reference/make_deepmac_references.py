"""DeepMAC mask-head references: the TF OD API's own mask logits from embeddings and boxes.

Runs the TF OD API's `deepmac_meta_arch` code (its `MaskHeadNetwork` and the meta-architecture's
`_predict_mask_logits_from_embeddings`: crop of the pixel embedding, `(y, x)` coordinates,
instance embedding at the box centers, the mask network) on seeded random embeddings and boxes,
with seeded random weights, for the `resnet4` and `fully_connected` mask networks. Writes
`tests/data/tfod_reference/deepmac_mask_head/outputs.npz`: the inputs, every weight of each
network (keyed `<network>/<kdet layer>/<index>`, the order of `get_weights()`) and the logits.

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python tools/tfod_reference/make_deepmac_references.py
"""

import os
import pathlib
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf
from object_detection.meta_architectures import deepmac_meta_arch

OUTPUT = (pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "tfod_reference"
          / "deepmac_mask_head" / "outputs.npz")
# network type → (mask_size, num_init_channels).
NETWORKS = {"resnet4": (8, 2), "fully_connected": (4, 1)}
DIM, PIXEL_DIM, MAP_SIZE = 6, 4, 8


def mask_logits(network_type, mask_size, channels, pixel, instance, boxes):
    """The TF OD API's mask logits `[B, N, S, S]` and its mask network."""
    params = types.SimpleNamespace(mask_size=mask_size, use_xy=True,
                                   predict_full_resolution_masks=False)
    network = deepmac_meta_arch.MaskHeadNetwork(network_type, channels, True, mask_size)
    owner = types.SimpleNamespace(_deepmac_params=params, _mask_net=network)
    arch = deepmac_meta_arch.DeepMACMetaArch
    owner._get_mask_head_input = types.MethodType(arch._get_mask_head_input, owner)
    owner._get_instance_embeddings = types.MethodType(arch._get_instance_embeddings, owner)
    predict = types.MethodType(arch._predict_mask_logits_from_embeddings, owner)
    predict(pixel, instance, boxes)  # builds the weights
    return predict, network


def kdet_weights(network_type, network, random):
    """Random weights set into the TF network → `{kdet key: array}`."""
    net = network._net
    if network_type == "fully_connected":
        layers = {"input_conv": net.input_layer, "fc1": net.fc1, "fc2": net.fc2}
    else:
        layers = {"input_conv": net.input_layer, "project_out": network.project_out}
        layers.update({layer.name: layer for layer in net.model.layers if layer.weights})
    weights = {}
    for name, layer in layers.items():
        values = [random.uniform(-0.5, 0.5, weight.shape).astype("float32")
                  for weight in layer.get_weights()]
        for index, variable in enumerate(layer.weights):
            if "moving_variance" in variable.name or "gamma" in variable.name:
                values[index] = np.abs(values[index]) + 0.5  # positive scales and variances
        layer.set_weights(values)
        for index, value in enumerate(values):
            weights[f"{network_type}/{name}/{index}"] = value
    return weights


def main():
    random = np.random.default_rng(0)
    tf.random.set_seed(0)
    pixel = random.normal(size=(2, MAP_SIZE, MAP_SIZE, PIXEL_DIM)).astype("float32")
    instance = random.normal(size=(2, MAP_SIZE, MAP_SIZE, DIM)).astype("float32")
    corners = np.sort(random.uniform(0.0, 1.0, (2, 3, 2, 2)), axis=2)
    boxes = np.stack([corners[:, :, 0, 0], corners[:, :, 0, 1], corners[:, :, 1, 0],
                      corners[:, :, 1, 1]], axis=-1).astype("float32")
    arrays = {"pixel_embedding": pixel, "instance_embedding": instance, "boxes": boxes}
    for network_type, (mask_size, channels) in NETWORKS.items():
        predict, network = mask_logits(network_type, mask_size, channels, pixel, instance, boxes)
        arrays.update(kdet_weights(network_type, network, random))
        arrays[f"{network_type}/logits"] = predict(pixel, instance, boxes).numpy()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, **arrays)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
