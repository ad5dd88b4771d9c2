"""How the R-FCN references (`make_tf1_rfcn_references.py`, `make_tf2_rfcn_reference.py`)
reduce the TF1 zoo's `rfcn_resnet101_coco` config beyond `reference_common.reduced_config`.

Imports no TF OD API model code, so the TF1 generator can still switch TensorFlow to graph mode
first.
"""

RFCN_DEPTH = 32
# The config's truncated N(0, 0.01) kernels left, at these widths, every class logit within
# 0.03 of 0 (all scores ~0.25: nothing for a parity test to tell apart).
RFCN_KERNEL_STDDEV = 0.3
# ResNet-101 width of both references (the TF OD API's builders take it, see README.md).
RESNET_DEPTH_MULTIPLIER = 0.03125
FIRST_STAGE_BOX_PREDICTOR_DEPTH = 16


def smaller_predictor(pipeline):
    """The reduced config's `rfcn_box_predictor`: `depth` `RFCN_DEPTH`, kernels
    N(0, `RFCN_KERNEL_STDDEV`)."""
    predictor = pipeline.model.faster_rcnn.second_stage_box_predictor.rfcn_box_predictor
    predictor.depth = RFCN_DEPTH
    initializer = predictor.conv_hyperparams.initializer
    initializer.random_normal_initializer.stddev = RFCN_KERNEL_STDDEV
