"""What is the ResNet50 V1 FPN extractor's own; what all SSD FPN extractors share is tested in
`test_ssd_fpn_feature_extractor.py`."""

from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNet50V1FPNFeatureExtractor,
)


def test_body_maps_are_c2_to_c5_and_the_pyramid_is_plain():
    extractor = SSDResNet50V1FPNFeatureExtractor(fpn_min_level=2)
    assert [o.shape[-1] for o in extractor.body.outputs] == [256, 512, 1024, 2048]
    # The RetinaNet pyramid: plain (not separable) convolutions, additional_layer_depth wide.
    assert not extractor.feature_pyramid.use_depthwise
    assert extractor.feature_pyramid.depth == 256
