"""TF1 (TF-Slim name) and TF2 mappings of kdet's Context R-CNN (`ContextRCNN`, the TF OD API's
`context_rcnn_*` configs and the TF1 zoo's `context_rcnn_resnet101_snapshot_serengeti`).

TF2: the rest of a Context R-CNN is a TF2 Faster R-CNN's (`faster_rcnn`); its
`context_rcnn_lib_tf2.AttentionBlock` is the meta-architecture's `_context_feature_extract_fn`,
with four `ContextProjection`s, `_query_proj`, `_key_proj`, `_val_proj` and `_feature_proj`
(the output projection), each a `projection` (Dense with bias) and a `batch_norm`. kdet's
`ContextRCNN` computes that attention by default; the mapping refuses (`CheckpointError`) a
model built with `tf1_attention=True` (no biases to read, and not the TF2 computation).

TF1: the rest of a Context R-CNN is a TF1 Faster R-CNN's (`tf1_faster_rcnn`); its attention
(`context_rcnn_lib._compute_box_context_attention`, one head and layer) builds three
`slim.fully_connected` layers with a batch norm and no bias in the scope
`AttentionBlock0_AttentionLayer0/`: `fully_connected` (queries, `[C, K]`),
`fully_connected_1` (keys, `[D, K]`) and `fully_connected_2` (values, `[D, K]`), and the
output projection (`[K, C]`) outside it, `fully_connected/`, at the top of the graph.

The TF1 graph computes its attention differently from the TF2 `AttentionBlock` kdet's
`ContextRCNN` computes by default: without projection biases, and adding twice the pooled box
features to the attention (`box + 2 * pooled + attention`). A model built with
`ContextRCNN(..., tf1_attention=True)` computes it that way; the mapping refuses
(`CheckpointError`) a model built without it, as its weights (biases) and its outputs would
not be the TF1 graph's. A model built from a TF1 config (`kdet.configs.load_pipeline`) takes
it through its config:
`ContextRCNN.from_config({**model.get_config(), "tf1_attention": True})`.
"""

from kdet.checkpoints.mappings.faster_rcnn import _faster_rcnn as faster_rcnn_tf2_pairs
from kdet.checkpoints.mappings.tf1_faster_rcnn import _faster_rcnn as faster_rcnn_tf1_pairs
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import LayerPair
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.models.faster_rcnn.context_rcnn import ContextRCNN

# Slim scope of the TF1 attention's query, key and value projections (block 0, layer 0).
ATTENTION_LAYER_SCOPE = "AttentionBlock0_AttentionLayer0"
# Object path of the TF2 `AttentionBlock` under the meta-architecture.
ATTENTION_BLOCK_PATH = "_context_feature_extract_fn"


@register_tf1_mapping(ContextRCNN)
def _context_rcnn_tf1(model, scope):
    if not model.tf1_attention:
        raise CheckpointError(
            "a TF1 Context R-CNN checkpoint needs the TF1 attention (projections without "
            "biases, box + 2 * pooled box + attention): build the model with "
            "ContextRCNN(..., tf1_attention=True), e.g. "
            "ContextRCNN.from_config({**model.get_config(), 'tf1_attention': True})"
        )
    attention = model.context_attention
    projections = (
        (attention.query_projection, slim_scope(scope, ATTENTION_LAYER_SCOPE, "fully_connected")),
        (attention.key_projection, slim_scope(scope, ATTENTION_LAYER_SCOPE, "fully_connected_1")),
        (
            attention.value_projection,
            slim_scope(scope, ATTENTION_LAYER_SCOPE, "fully_connected_2"),
        ),
        (attention.output_projection, slim_scope(scope, "fully_connected")),
    )
    return faster_rcnn_tf1_pairs(model, scope) + [
        SlimLayerPair(layer, path, HEADS)
        for projection, path in projections
        for layer in (projection.dense, projection.batch_norm)
    ]


@register_tf2_mapping(ContextRCNN)
def _context_rcnn_tf2(model, prefix, shapes):
    if model.tf1_attention:
        raise CheckpointError(
            "a TF2 Context R-CNN checkpoint needs the TF2 attention (projections with biases, "
            "box + attention): build the model without tf1_attention, e.g. "
            "ContextRCNN.from_config({**model.get_config(), 'tf1_attention': False})"
        )
    attention = model.context_attention
    block = f"{prefix}/{ATTENTION_BLOCK_PATH}"
    projections = (
        (attention.query_projection, f"{block}/_query_proj"),
        (attention.key_projection, f"{block}/_key_proj"),
        (attention.value_projection, f"{block}/_val_proj"),
        (attention.output_projection, f"{block}/_feature_proj"),
    )
    return faster_rcnn_tf2_pairs(model, prefix, shapes) + [
        pair
        for projection, path in projections
        for pair in (
            LayerPair(projection.dense, f"{path}/projection", HEADS),
            LayerPair(projection.batch_norm, f"{path}/batch_norm", HEADS),
        )
    ]
