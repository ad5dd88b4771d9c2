"""Target assignment: matcher, sampler, target assigner and hard-negative miner."""

from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.balanced_positive_negative_sampler import BalancedPositiveNegativeSampler
from kdet.targets.hard_example_miner import HardExampleMiner
from kdet.targets.match import IGNORED
from kdet.targets.match import UNMATCHED
from kdet.targets.target_assigner import TargetAssigner

__all__ = [
    "IGNORED",
    "UNMATCHED",
    "ArgmaxMatcher",
    "BalancedPositiveNegativeSampler",
    "HardExampleMiner",
    "TargetAssigner",
]
