"""Named match values: what a matcher says about each anchor.

A match tensor holds one int32 per anchor: a value >= 0 is the index of the groundtruth row the
anchor is matched to (a positive), and the two negative values below name the other outcomes,
as in the TF OD API `Match` object.
"""

# The anchor is a negative: background for classification, no box regression.
UNMATCHED = -1
# The anchor takes no part in the loss: neither positive nor negative (cls weight 0).
IGNORED = -2
