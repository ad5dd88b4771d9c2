"""TF OD API `fixed_shape_resizer`: every image to one size, aspect ratio not kept."""

import keras

from kdet.layers.image_resizer import ImageResizer


@keras.saving.register_keras_serializable(package="kdet")
class FixedShapeResizer(ImageResizer):
    """Resizes every image to `height × width` (SSD's usual 300×300 or 320×320).

    Args:
        height: int. Output height.
        width: int. Output width.
        resize_method: see `ImageResizer`. Defaults to `"bilinear"`.

    Example:
    ```python
    resizer = kdet.layers.FixedShapeResizer(300, 300)
    resized, scale = resizer(images)  # [B, 300, 300, 3], scale (1, 1)
    ```
    """

    def __init__(self, height, width, resize_method="bilinear"):
        super().__init__(resize_method)
        self.height = height
        self.width = width

    def content_and_padded_size(self, height, width):
        size = (self.height, self.width)
        return size, size

    def get_config(self):
        return {"height": self.height, "width": self.width, **super().get_config()}
