"""SSD: single-shot multibox detector, the TF OD API SSD meta-architecture."""

from kdet.models.ssd.convolutional_box_predictor import ConvolutionalBoxPredictor
from kdet.models.ssd.ssd import SSD
from kdet.models.ssd.weight_shared_convolutional_box_predictor import (
    WeightSharedConvolutionalBoxPredictor,
)

__all__ = ["ConvolutionalBoxPredictor", "SSD", "WeightSharedConvolutionalBoxPredictor"]
