"""TF OD API `Loss` messages: classification and localization losses, hard example mining."""

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.model_builder.common import construct
from kdet.losses import BootstrappedSigmoidClassificationLoss
from kdet.losses import SigmoidFocalClassificationLoss
from kdet.losses import WeightedL1LocalizationLoss
from kdet.losses import WeightedL2LocalizationLoss
from kdet.losses import WeightedSigmoidClassificationLoss
from kdet.losses import WeightedSmoothL1LocalizationLoss
from kdet.losses import WeightedSoftmaxClassificationLoss
from kdet.targets.hard_example_miner import HardExampleMiner

# -- losses -----------------------------------------------------------------------------------

# Deprecated in the TF OD API and without effect there.
ANCHORWISE_OUTPUT = Switch()


def _build_weighted_sigmoid(node):
    """Reads a TF OD API `WeightedSigmoidClassificationLoss`."""
    read(node, {"anchorwise_output": ANCHORWISE_OUTPUT})
    return WeightedSigmoidClassificationLoss()


def _build_weighted_softmax(node):
    """Reads a TF OD API `WeightedSoftmaxClassificationLoss` (`logit_scale`)."""
    fields = read(node, {"anchorwise_output": ANCHORWISE_OUTPUT, "logit_scale": Float(1.0)})
    return WeightedSoftmaxClassificationLoss(logit_scale=fields["logit_scale"])


def _build_weighted_sigmoid_focal(node):
    """Reads a TF OD API `SigmoidFocalClassificationLoss` (`gamma`, `alpha`; no alpha: none)."""
    fields = read(
        node,
        {"anchorwise_output": ANCHORWISE_OUTPUT, "gamma": Float(default=2.0), "alpha": Float()},
    )
    return SigmoidFocalClassificationLoss(gamma=fields["gamma"], alpha=fields["alpha"])


def _build_bootstrapped_sigmoid(node):
    """Reads a TF OD API `BootstrappedSigmoidClassificationLoss` (`alpha`, `hard_bootstrap`)."""
    fields = read(
        node,
        {
            "anchorwise_output": ANCHORWISE_OUTPUT,
            "alpha": Float(required=True),
            "hard_bootstrap": Bool(default=False),
        },
    )
    return construct(
        node,
        BootstrappedSigmoidClassificationLoss,
        alpha=fields["alpha"],
        hard_bootstrap=fields["hard_bootstrap"],
    )


def _build_l1(node):
    """Reads a TF OD API `L1LocalizationLoss` (no fields)."""
    read(node, {})
    return WeightedL1LocalizationLoss()


def _build_weighted_smooth_l1(node):
    """Reads a TF OD API `WeightedSmoothL1LocalizationLoss` (`delta`)."""
    fields = read(node, {"anchorwise_output": ANCHORWISE_OUTPUT, "delta": Float(default=1.0)})
    return WeightedSmoothL1LocalizationLoss(delta=fields["delta"])


def _build_weighted_l2(node):
    """Reads a TF OD API `WeightedL2LocalizationLoss`."""
    read(node, {"anchorwise_output": ANCHORWISE_OUTPUT})
    return WeightedL2LocalizationLoss()


CLASSIFICATION_LOSSES = {
    "weighted_sigmoid": _build_weighted_sigmoid,
    "weighted_softmax": _build_weighted_softmax,
    "weighted_sigmoid_focal": _build_weighted_sigmoid_focal,
    "bootstrapped_sigmoid": _build_bootstrapped_sigmoid,
}
LOCALIZATION_LOSSES = {
    "weighted_smooth_l1": _build_weighted_smooth_l1,
    "weighted_l2": _build_weighted_l2,
    "l1_localization_loss": _build_l1,
}
_HARD_EXAMPLE_LOSS_TYPES = {"BOTH": "both", "CLASSIFICATION": "cls", "LOCALIZATION": "loc"}


def build_loss_choice(node, builders):
    """Reads a TF OD API `ClassificationLoss` / `LocalizationLoss` oneof with `builders`."""
    chosen = read_one_of(node, tuple(builders))
    return builders[chosen.name](chosen)


def _build_hard_example_miner(node, classification_weight, localization_weight):
    """Reads a TF OD API `HardExampleMiner` → `kdet.targets.HardExampleMiner`.

    As in the TF OD API, 0 hard examples or negatives per positive mean no limit, and
    `loss_type: BOTH` ranks by the loss weights of the enclosing `loss` message.
    """
    fields = read(
        node,
        {
            "num_hard_examples": Int(default=64, minimum=0),
            "iou_threshold": Float(default=0.7),
            "loss_type": Enum(_HARD_EXAMPLE_LOSS_TYPES, default="BOTH"),
            "max_negatives_per_positive": Int(default=0, minimum=0),
            "min_negatives_per_image": Int(default=0, minimum=0),
        },
    )
    loss_weights = {}
    if fields["loss_type"] == "both":
        loss_weights = {
            "cls_loss_weight": classification_weight,
            "loc_loss_weight": localization_weight,
        }
    return construct(
        node,
        HardExampleMiner,
        num_hard_examples=fields["num_hard_examples"] or None,
        iou_threshold=fields["iou_threshold"],
        loss_type=fields["loss_type"],
        max_negatives_per_positive=fields["max_negatives_per_positive"] or None,
        min_negatives_per_image=fields["min_negatives_per_image"],
        **loss_weights,
    )


def build_ssd_loss(node):
    """Reads a TF OD API `Loss` message → the loss arguments of `kdet.SSD`."""
    fields = read(
        node,
        {
            "classification_loss": SubMessage(required=True),
            "localization_loss": SubMessage(required=True),
            "hard_example_miner": SubMessage(),
            "classification_weight": Float(default=1.0),
            "localization_weight": Float(default=1.0),
        },
    )
    weights = (fields["classification_weight"], fields["localization_weight"])
    miner = fields["hard_example_miner"]
    return {
        "classification_loss": build_loss_choice(
            fields["classification_loss"], CLASSIFICATION_LOSSES
        ),
        "localization_loss": build_loss_choice(fields["localization_loss"], LOCALIZATION_LOSSES),
        "hard_example_miner": (
            None if miner is None else _build_hard_example_miner(miner, *weights)
        ),
        "classification_weight": weights[0],
        "localization_weight": weights[1],
    }
