"""Detection layers: anchor generators and multi-class NMS."""
