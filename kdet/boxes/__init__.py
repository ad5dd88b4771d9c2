"""Pure box functions: formats, IoU, clipping, area and box coders."""
