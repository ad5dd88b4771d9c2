"""TF1 (TF-Slim name) mapping of kdet's Context R-CNN (`ContextRCNN`, the TF OD API's
`context_rcnn_*` configs and the TF1 zoo's `context_rcnn_resnet101_snapshot_serengeti`).

The rest of a Context R-CNN is a TF1 Faster R-CNN's (`tf1_faster_rcnn`); its attention
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

from kdet.checkpoints.mappings.tf1_faster_rcnn import _faster_rcnn as faster_rcnn_tf1_pairs
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.models.faster_rcnn.context_rcnn import ContextRCNN

# Slim scope of the TF1 attention's query, key and value projections (block 0, layer 0).
ATTENTION_LAYER_SCOPE = "AttentionBlock0_AttentionLayer0"


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
