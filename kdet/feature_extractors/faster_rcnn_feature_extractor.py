"""Base class of Faster R-CNN feature extractors: the TF OD API two-stage split."""

import keras

from kdet.feature_extractors.ssd_feature_extractor import check_backbone_weights


class FasterRCNNFeatureExtractor(keras.layers.Layer):
    """The body of a Faster R-CNN, split where the TF OD API splits it.

    A subclass implements:
    - `preprocess(images)`: float32 `[batch, height, width, 3]` raw pixels 0..255 → the
      normalized input its body expects;
    - `extract_proposal_features(images, training=None)`: preprocessed images → the feature
      map the RPN and the RoI crops read, `[batch, h, w, channels]` at
      `first_stage_features_stride`; FPN extractors return a list of maps for the pyramid
      levels `min_level..max_level`, finest first (`is_fpn` is then True);
    - `extract_box_classifier_features(crops, training=None)`: RoI crops
      `[num_rois, crop_h, crop_w, channels]` → per-RoI features `[num_rois, ...]` (the second
      stage, e.g. ResNet stage 5, or two fully connected layers for FPN);
    - `get_config()`, with every constructor argument;
    and registers with `kdet.feature_extractors.register_feature_extractor(name)`.

    `restore_from_classification_checkpoint(source)` loads the weights of a Keras
    classification model (e.g. `keras.applications.ResNet50(weights="imagenet")`, or the
    MobileNetV2 body of the `ssd_mobilenet_v2_coco` zoo model) into the layers of the same
    name, as the TF OD API `restore_from_classification_checkpoint_fn` does.

    Args:
        first_stage_features_stride: int. Stride of the proposal feature map (16 for the
            TF OD API ResNet extractors). Defaults to `16`.
        backbone_weights: `None` or `"imagenet"` (the `keras.applications` weights,
            downloaded on first use). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.
    """

    #: True for extractors whose proposal features are a list of pyramid levels.
    is_fpn = False

    def __init__(self, first_stage_features_stride=16, backbone_weights=None, **kwargs):
        super().__init__(**kwargs)
        check_backbone_weights(backbone_weights)
        self.first_stage_features_stride = first_stage_features_stride
        self.backbone_weights = backbone_weights

    def preprocess(self, images):
        """float32 `[batch, height, width, 3]` raw pixels 0..255 → the body's normalized input."""
        raise NotImplementedError

    def extract_proposal_features(self, images, training=None):
        """Preprocessed images → the RPN's map `[batch, h, w, channels]` (FPN: list of levels)."""
        raise NotImplementedError

    def extract_box_classifier_features(self, crops, training=None):
        """RoI crops `[num_rois, crop_h, crop_w, channels]` → features `[num_rois, ...]`."""
        raise NotImplementedError

    def call(self, images, training=None):
        """`extract_proposal_features(images)`: what the layer computes when called."""
        return self.extract_proposal_features(images, training=training)

    def restore_from_classification_checkpoint(self, source):
        """Copies weights from a classification model into the layers of the same name.

        Args:
            source: a `keras.Model`, or the path of a `.keras` model file.

        Returns:
            The sorted names of the layers whose weights were restored.

        Raises:
            ValueError: if no layer name and weight shapes match (wrong model), or a layer
                of the same name has weights of other shapes.
        """
        return restore_layers_by_name(self, source)

    def get_config(self):
        config = super().get_config()
        config["first_stage_features_stride"] = self.first_stage_features_stride
        config["backbone_weights"] = self.backbone_weights
        return config


def restore_layers_by_name(target, source):
    """Copies the weights of `source`'s layers into `target`'s (nested) layers of the same name.

    Args:
        target: a built Keras layer or model.
        source: a `keras.Model` or the path of a `.keras` file.

    Returns:
        Sorted names of the restored layers.
    """
    if not isinstance(source, keras.layers.Layer):
        source = keras.saving.load_model(source, compile=False)
    source_layers = {layer.name: layer for layer in _weighted_layers(source)}
    pairs = [
        (layer, source_layers[layer.name])
        for layer in _weighted_layers(target)
        if layer.name in source_layers
    ]
    # Every pair is checked before any weight is set, so a mismatch restores nothing.
    for layer, match in pairs:
        theirs = [w.shape for w in match.weights]
        ours = [w.shape for w in layer.weights]
        if theirs != ours:
            raise ValueError(
                f"layer {layer.name!r}: the checkpoint has weights of shapes {theirs}, this "
                f"model {ours}; is it the same architecture?"
            )
    for layer, match in pairs:
        layer.set_weights(match.get_weights())
    restored = [layer.name for layer, _ in pairs]
    if not restored:
        raise ValueError(
            f"no layer of {source.name!r} matches a layer of {target.name!r} by name; expected "
            "a classification model of the same body (e.g. keras.applications.ResNet50)"
        )
    return sorted(restored)


def _weighted_layers(model):
    """Leaf layers that own weights, found through nested models and layers."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer.weights and not list(layer._flatten_layers(include_self=False, recursive=False))
    ]
