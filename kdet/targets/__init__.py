"""Target assignment: matcher, sampler, target assigner and hard-negative miner."""
