"""Datasets for tests and quick experiments: synthetic shapes and bundled real samples."""

from kdet.datasets.samples import DEEPFOREST_LABEL_MAP
from kdet.datasets.samples import QUOKKA_LABEL_MAP
from kdet.datasets.samples import deepforest
from kdet.datasets.samples import quokka
from kdet.datasets.samples import sample_data_dir
from kdet.datasets.shapes import shapes
from kdet.datasets.shapes import shapes_label_map
