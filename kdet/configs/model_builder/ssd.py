"""The TF OD API `Ssd` message and its box predictors → `kdet.SSD`."""

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.model_builder.common import construct
from kdet.configs.model_builder.components import SSD_ANCHOR_GENERATORS
from kdet.configs.model_builder.components import build_anchor_generator
from kdet.configs.model_builder.components import build_box_coder
from kdet.configs.model_builder.components import build_image_resizer
from kdet.configs.model_builder.components import build_matcher
from kdet.configs.model_builder.components import read_similarity_calculator
from kdet.configs.model_builder.feature_extractor import KERAS_SUFFIX
from kdet.configs.model_builder.feature_extractor import SSD_FEATURE_EXTRACTOR_SCHEMA
from kdet.configs.model_builder.feature_extractor import build_feature_extractor
from kdet.configs.model_builder.hyperparams import read_conv_hyperparams
from kdet.configs.model_builder.losses import build_ssd_loss
from kdet.configs.model_builder.post_processing import build_non_max_suppression
from kdet.feature_extractors import SSDFeatureExtractor
from kdet.models.ssd import SSD
from kdet.models.ssd import ConvolutionalBoxPredictor
from kdet.models.ssd import WeightSharedConvolutionalBoxPredictor

_BOX_CODE_SIZE = Fixed(
    Int(default=4), 4, "kdet's SSD box coder (faster_rcnn_box_coder) encodes a box in 4 numbers"
)


def _build_convolutional_box_predictor(
    node, num_classes, num_anchors_per_location, background, keras_model
):
    """Reads a TF OD API `ConvolutionalBoxPredictor` → `ConvolutionalBoxPredictor`.

    `conv_hyperparams` is applied as the TF OD API applies it (initializer and regularizer of
    every kernel; batch norm and activation after the tower and depthwise convolutions); an
    absent one gives kdet's default. Its tower depth is TF OD API
    `max(min(channels, max_depth), min_depth)`, one fixed depth in kdet: `min_depth` and
    `max_depth` must be equal. The TF OD API's TF1 and TF2 (`keras_model`) versions compute
    the same.
    """
    fields = read(
        node,
        {
            "conv_hyperparams": SubMessage(),
            "min_depth": Int(default=0, minimum=0),
            "max_depth": Int(default=0, minimum=0),
            "num_layers_before_predictor": Int(default=0, minimum=0),
            "use_dropout": Bool(default=True),
            "dropout_keep_probability": Float(default=0.8),
            "kernel_size": Int(default=1, minimum=1),
            "box_code_size": _BOX_CODE_SIZE,
            "apply_sigmoid_to_scores": Fixed(
                Bool(default=False),
                False,
                "kdet's ConvolutionalBoxPredictor outputs logits; scores are converted by "
                "post_processing.score_converter",
            ),
            "class_prediction_bias_init": Float(default=0.0),
            "use_depthwise": Bool(default=False),
        },
    )
    depth = fields["max_depth"]
    if fields["min_depth"] != depth:
        raise fields.error(
            "min_depth",
            f"'{fields.node.path}' has min_depth {fields['min_depth']} and max_depth {depth}, "
            "but kdet's tower has one fixed depth: set them equal",
        )
    return construct(
        node,
        ConvolutionalBoxPredictor,
        num_classes=num_classes,
        num_anchors_per_location=num_anchors_per_location,
        kernel_size=fields["kernel_size"],
        num_layers_before_predictor=fields["num_layers_before_predictor"],
        depth=depth,
        use_depthwise=fields["use_depthwise"],
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        class_prediction_bias_init=fields["class_prediction_bias_init"],
        conv_hyperparams=read_conv_hyperparams(fields["conv_hyperparams"]),
        add_background_class=background,
    )


def _read_clip_range(node):
    """Reads a `BoxEncodingsClipRange` → `(min, max)`."""
    fields = read(node, {"min": Float(required=True), "max": Float(required=True)})
    if not fields["min"] < fields["max"]:
        raise fields.error(
            "max",
            f"'{node.path}' has min {fields['min']} and max {fields['max']}: min must be "
            "below max",
        )
    return fields["min"], fields["max"]


def _build_weight_shared_box_predictor(
    node, num_classes, num_anchors_per_location, background, keras_model
):
    """Reads a TF OD API `WeightSharedConvolutionalBoxPredictor` → kdet's.

    As in the TF OD API, the towers have batch norm exactly when `conv_hyperparams` sets
    `batch_norm` (or `sync_batch_norm`); their activation is `conv_hyperparams.activation` in
    the TF2 (Keras) predictor of a `keras_model` (a `*_keras` feature extractor's), ReLU6
    whatever it says in the TF1 (slim) one.
    """
    fields = read(
        node,
        {
            "conv_hyperparams": SubMessage(),
            "num_layers_before_predictor": Int(default=0, minimum=0),
            "depth": Int(default=0, minimum=0),
            "kernel_size": Int(default=3, minimum=1),
            "box_code_size": _BOX_CODE_SIZE,
            "class_prediction_bias_init": Float(default=0.0),
            "use_dropout": Bool(default=False),
            "dropout_keep_probability": Float(default=0.8),
            "share_prediction_tower": Bool(default=False),
            "use_depthwise": Bool(default=False),
            "score_converter": Enum({"IDENTITY": "identity", "SIGMOID": "sigmoid"},
                                    default="IDENTITY"),
            "box_encodings_clip_range": SubMessage(),
        },
    )
    clip_range = fields["box_encodings_clip_range"]
    return construct(
        node,
        WeightSharedConvolutionalBoxPredictor,
        num_classes=num_classes,
        num_anchors_per_location=num_anchors_per_location,
        depth=fields["depth"],
        num_layers_before_predictor=fields["num_layers_before_predictor"],
        kernel_size=fields["kernel_size"],
        use_depthwise=fields["use_depthwise"],
        share_prediction_tower=fields["share_prediction_tower"],
        class_prediction_bias_init=fields["class_prediction_bias_init"],
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        conv_hyperparams=read_conv_hyperparams(fields["conv_hyperparams"]),
        box_encodings_clip_range=None if clip_range is None else _read_clip_range(clip_range),
        class_score_converter=fields["score_converter"],
        add_background_class=background,
        use_conv_hyperparams_activation=keras_model,
    )


_SSD_BOX_PREDICTORS = {
    "convolutional_box_predictor": _build_convolutional_box_predictor,
    "weight_shared_convolutional_box_predictor": _build_weight_shared_box_predictor,
}


def _build_ssd_box_predictor(
    node, num_classes, anchor_generator, add_background_class, keras_model
):
    """Reads a TF OD API `BoxPredictor` (a oneof) → an SSD box predictor; `keras_model`: as
    the TF OD API's TF2 (Keras) predictors compute."""
    chosen = read_one_of(node, tuple(_SSD_BOX_PREDICTORS))
    return _SSD_BOX_PREDICTORS[chosen.name](
        chosen,
        num_classes,
        anchor_generator.num_anchors_per_location(),
        add_background_class,
        keras_model,
    )

# -- the meta-architectures -------------------------------------------------------------------

_SSD_SCHEMA = {
    "num_classes": Int(required=True, minimum=1),
    "image_resizer": SubMessage(required=True),
    "feature_extractor": SubMessage(required=True),
    "box_coder": SubMessage(required=True),
    "matcher": SubMessage(required=True),
    "similarity_calculator": SubMessage(required=True),
    "anchor_generator": SubMessage(required=True),
    "box_predictor": SubMessage(required=True),
    "loss": SubMessage(required=True),
    "post_processing": SubMessage(required=True),
    "normalize_loss_by_num_matches": Bool(default=True),
    "normalize_loc_loss_by_codesize": Bool(default=False),
    "encode_background_as_zeros": Bool(default=False),
    "add_background_class": Bool(default=True),
    "negative_class_weight": Float(default=1.0),
    "freeze_batchnorm": Bool(default=False),
    "inplace_batchnorm_update": Switch(),
    "explicit_background_class": Fixed(
        Bool(default=False),
        False,
        "it is for ground truth whose class scores include a background column "
        "(multiclass_scores), which kdet's inputs do not carry",
    ),
    "use_confidences_as_targets": Fixed(
        Bool(default=False),
        False,
        "it trains on ground-truth confidences (multiclass_scores), which kdet's inputs do "
        "not carry",
    ),
    # Read by the TF OD API only with use_confidences_as_targets.
    "implicit_example_weight": Float(default=1.0),
    "return_raw_detections_during_predict": Fixed(
        Bool(default=False),
        False,
        "kdet's predictions are the post-processed detections only",
    ),
}


def build_ssd(node):
    """Reads a TF OD API `Ssd` message → `kdet.SSD`."""
    fields = read(node, _SSD_SCHEMA)
    num_classes = fields["num_classes"]
    read_similarity_calculator(fields["similarity_calculator"])
    _, anchor_generator = build_anchor_generator(
        fields["anchor_generator"], SSD_ANCHOR_GENERATORS
    )
    # The TF OD API builds the TF2 (Keras) model of a `*_keras` feature extractor (its only
    # TF2 extractors), the TF1 (slim) one of the others.
    extractor_type = read(fields["feature_extractor"], SSD_FEATURE_EXTRACTOR_SCHEMA)["type"]
    components = {
        "image_resizer": build_image_resizer(fields["image_resizer"]),
        "box_predictor": _build_ssd_box_predictor(
            fields["box_predictor"], num_classes, anchor_generator,
            fields["add_background_class"], extractor_type.endswith(KERAS_SUFFIX),
        ),
        "box_coder": build_box_coder(fields["box_coder"]),
        "matcher": build_matcher(fields["matcher"]),
        **build_ssd_loss(fields["loss"]),
        "non_max_suppression": build_non_max_suppression(fields["post_processing"]),
    }
    # The extractor last: it is the slow part to build.
    extractor = build_feature_extractor(
        fields["feature_extractor"], SSDFeatureExtractor, SSD_FEATURE_EXTRACTOR_SCHEMA
    )
    return construct(
        node,
        SSD,
        num_classes=num_classes,
        feature_extractor=extractor,
        anchor_generator=anchor_generator,
        normalize_loss_by_num_matches=fields["normalize_loss_by_num_matches"],
        normalize_loc_loss_by_codesize=fields["normalize_loc_loss_by_codesize"],
        encode_background_as_zeros=fields["encode_background_as_zeros"],
        add_background_class=fields["add_background_class"],
        negative_class_weight=fields["negative_class_weight"],
        freeze_batchnorm=fields["freeze_batchnorm"],
        **components,
    )
