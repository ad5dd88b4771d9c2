"""The TF OD API `Ssd` message and its box predictors → `kdet.SSD`."""

from kdet.configs.field_reader import Bool
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
from kdet.configs.model_builder.feature_extractor import SSD_FEATURE_EXTRACTOR_SCHEMA
from kdet.configs.model_builder.feature_extractor import build_feature_extractor
from kdet.configs.model_builder.hyperparams import UNUSED
from kdet.configs.model_builder.hyperparams import BatchNorm
from kdet.configs.model_builder.hyperparams import Hyperparams
from kdet.configs.model_builder.hyperparams import random_normal
from kdet.configs.model_builder.hyperparams import read_hyperparams
from kdet.configs.model_builder.hyperparams import truncated_normal
from kdet.configs.model_builder.losses import build_ssd_loss
from kdet.configs.model_builder.post_processing import read_ssd_post_processing
from kdet.feature_extractors import SSDFeatureExtractor
from kdet.models.ssd import SSD
from kdet.models.ssd import ConvolutionalBoxPredictor
from kdet.models.ssd import WeightSharedConvolutionalBoxPredictor


def _convolutional_box_predictor_hyperparams(uses_batch_norm):
    """`ConvolutionalBoxPredictor` layer settings: batch norm and ReLU6 exist only in its
    towers and depthwise heads."""
    if not uses_batch_norm:
        return Hyperparams(
            "kdet's ConvolutionalBoxPredictor",
            truncated_normal(0.03),
            activation=UNUSED,
            batch_norm=UNUSED,
        )
    return Hyperparams(
        "kdet's ConvolutionalBoxPredictor",
        truncated_normal(0.03),
        batch_norm=BatchNorm(decay=0.9997, epsilon=1e-3),
    )


def _build_convolutional_box_predictor(node, num_classes, num_anchors_per_location):
    """Reads a TF OD API `ConvolutionalBoxPredictor` → `ConvolutionalBoxPredictor`.

    Its tower depth is TF OD API `max(min(channels, max_depth), min_depth)`, one fixed depth
    in kdet: `min_depth` and `max_depth` must be equal.
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
            "box_code_size": Fixed(Int(default=4), 4),
            "apply_sigmoid_to_scores": Fixed(
                Bool(default=False), False, "scores are converted in post_processing"
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
    num_layers = fields["num_layers_before_predictor"]
    uses_batch_norm = fields["use_depthwise"] or (depth > 0 and num_layers > 0)
    hyperparams = read_hyperparams(
        fields["conv_hyperparams"], _convolutional_box_predictor_hyperparams(uses_batch_norm)
    )
    return construct(
        node,
        ConvolutionalBoxPredictor,
        num_classes=num_classes,
        num_anchors_per_location=num_anchors_per_location,
        kernel_size=fields["kernel_size"],
        num_layers_before_predictor=num_layers,
        depth=depth,
        use_depthwise=fields["use_depthwise"],
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        class_prediction_bias_init=fields["class_prediction_bias_init"],
        **hyperparams.regularization(),
    )


def _build_weight_shared_box_predictor(node, num_classes, num_anchors_per_location):
    """Reads a TF OD API `WeightSharedConvolutionalBoxPredictor` → kdet's.

    As in the TF OD API, the towers have batch norm exactly when `conv_hyperparams` sets
    `batch_norm`.
    """
    fields = read(
        node,
        {
            "conv_hyperparams": SubMessage(),
            "num_layers_before_predictor": Int(default=0, minimum=0),
            "depth": Int(default=0, minimum=0),
            "kernel_size": Int(default=3, minimum=1),
            "box_code_size": Fixed(Int(default=4), 4),
            "class_prediction_bias_init": Float(default=0.0),
            "use_dropout": Bool(default=False),
            "dropout_keep_probability": Float(default=0.8),
            "share_prediction_tower": Bool(default=False),
            "use_depthwise": Bool(default=False),
        },
    )
    num_layers = fields["num_layers_before_predictor"]
    has_tower = num_layers > 0
    spec = Hyperparams(
        "kdet's WeightSharedConvolutionalBoxPredictor",
        random_normal(0.01),
        activation="RELU_6" if has_tower else UNUSED,
        batch_norm=BatchNorm(0.997, 1e-3, required=False) if has_tower else UNUSED,
    )
    hyperparams = read_hyperparams(fields["conv_hyperparams"], spec)
    return construct(
        node,
        WeightSharedConvolutionalBoxPredictor,
        num_classes=num_classes,
        num_anchors_per_location=num_anchors_per_location,
        depth=fields["depth"],
        num_layers_before_predictor=num_layers,
        kernel_size=fields["kernel_size"],
        use_depthwise=fields["use_depthwise"],
        apply_batch_norm=hyperparams.batch_norm,
        share_prediction_tower=fields["share_prediction_tower"],
        class_prediction_bias_init=fields["class_prediction_bias_init"],
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        **hyperparams.regularization(),
    )


_SSD_BOX_PREDICTORS = {
    "convolutional_box_predictor": _build_convolutional_box_predictor,
    "weight_shared_convolutional_box_predictor": _build_weight_shared_box_predictor,
}


def _build_ssd_box_predictor(node, num_classes, anchor_generator):
    """Reads a TF OD API `BoxPredictor` (a oneof) → an SSD box predictor."""
    chosen = read_one_of(node, tuple(_SSD_BOX_PREDICTORS))
    return _SSD_BOX_PREDICTORS[chosen.name](
        chosen, num_classes, anchor_generator.num_anchors_per_location()
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
    "add_background_class": Fixed(
        Bool(default=True), True, "kdet's SSD predicts a background column"
    ),
    "negative_class_weight": Fixed(Float(default=1.0), 1.0),
    "freeze_batchnorm": Bool(default=False),
    "inplace_batchnorm_update": Switch(),
}


def build_ssd(node):
    """Reads a TF OD API `Ssd` message → `kdet.SSD`."""
    fields = read(node, _SSD_SCHEMA)
    num_classes = fields["num_classes"]
    read_similarity_calculator(fields["similarity_calculator"])
    _, anchor_generator = build_anchor_generator(
        fields["anchor_generator"], SSD_ANCHOR_GENERATORS
    )
    components = {
        "image_resizer": build_image_resizer(fields["image_resizer"]),
        "box_predictor": _build_ssd_box_predictor(
            fields["box_predictor"], num_classes, anchor_generator
        ),
        "box_coder": build_box_coder(fields["box_coder"]),
        "matcher": build_matcher(fields["matcher"]),
        **build_ssd_loss(fields["loss"]),
        **read_ssd_post_processing(fields["post_processing"]),
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
        freeze_batchnorm=fields["freeze_batchnorm"],
        **components,
    )
