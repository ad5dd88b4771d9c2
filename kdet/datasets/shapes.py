"""A synthetic detection dataset: coloured shapes on textured backgrounds."""

import numpy as np

# Label id k (1-based) draws _SHAPE_KINDS[k - 1].
_SHAPE_KINDS = ("rectangle", "ellipse", "triangle", "cross")
# A new shape's box may cover at most this fraction of the smaller of itself and any placed
# box, so shapes touch or occlude a little but every object stays mostly visible.
_MAX_OVERLAP = 0.25
_PLACEMENT_ATTEMPTS = 20
# Minimum L1 distance (0..765) between a shape's colour and its image's background colour.
_MIN_CONTRAST = 150
_COLOUR_CANDIDATES = 16
# Background: two octaves of smooth blotches plus per-pixel noise (standard deviations in
# grey levels), so a detector cannot find objects by thresholding a flat colour.
_TEXTURE_OCTAVES = ((4, 28.0), (12, 12.0))
_PIXEL_NOISE = 6.0


def shapes_label_map(num_classes=3):
    """The label map of `shapes()`: label id → shape name.

    Args:
        num_classes: int. Number of shape kinds in use, 1 to 4. Defaults to `3`.

    Returns:
        A dict `{1: "rectangle", 2: "ellipse", 3: "triangle"}` (ids 1..`num_classes`; the
        fourth kind is `"cross"`).

    Example:
    >>> kdet.datasets.shapes_label_map(2)
    {1: 'rectangle', 2: 'ellipse'}
    """
    _check_num_classes(num_classes)
    return {k + 1: name for k, name in enumerate(_SHAPE_KINDS[:num_classes])}


def shapes(
    num_images,
    image_size,
    seed=0,
    max_boxes=8,
    min_size=None,
    max_size=None,
    num_classes=3,
):
    """Generates a synthetic detection dataset of coloured shapes.

    Each image has a random background colour with smooth blotches and pixel noise, and
    0 to `max_boxes` filled shapes (rectangle, ellipse, triangle in one of four orientations,
    cross) of random colour, size and aspect ratio. Shapes overlap only a little. Each box is
    the tight bounding box of the pixels its shape covers. The output depends only on the
    arguments: the same `seed` gives the same data.

    Args:
        num_images: int. Number of images `N`.
        image_size: int. Side `S` of the square images, in pixels (at least 16).
        seed: int. Seed of the `numpy.random.Generator`. Defaults to `0`.
        max_boxes: int. Most shapes per image, and the padded box count `M`. The shape count
            per image is uniform in `0..max_boxes`, so some images have no boxes; fewer are
            drawn when no free place is found. Defaults to `8`.
        min_size: int. Smallest shape side in pixels. Defaults to 8% of `image_size`
            (at least 4).
        max_size: int. Largest shape side in pixels. Defaults to 60% of `image_size`.
        num_classes: int. Number of shape kinds used, 1 to 4, in the order of
            `shapes_label_map()`. Defaults to `3`.

    Returns:
        A tuple `(images, y)`: `images` uint8 `[N, S, S, 3]`; `y = {"boxes": float32
        [N, M, 4] yxyx in pixels, "labels": int32 [N, M]}`, 1-based label ids, padded with -1.

    Example:
    >>> images, y = kdet.datasets.shapes(num_images=4, image_size=64, seed=1)
    >>> images.shape, y["boxes"].shape, y["labels"].shape
    ((4, 64, 64, 3), (4, 8, 4), (4, 8))
    """
    _check_num_classes(num_classes)
    if num_images < 0:
        raise ValueError(f"`num_images` must be >= 0, got {num_images}.")
    if image_size < 16:
        raise ValueError(f"`image_size` must be at least 16 pixels, got {image_size}.")
    if max_boxes < 1:
        raise ValueError(f"`max_boxes` must be >= 1, got {max_boxes}.")
    min_size = max(4, round(0.08 * image_size)) if min_size is None else min_size
    max_size = round(0.6 * image_size) if max_size is None else max_size
    if not 2 <= min_size <= max_size <= image_size:
        raise ValueError(
            "Expected 2 <= `min_size` <= `max_size` <= `image_size`, got "
            f"min_size={min_size}, max_size={max_size}, image_size={image_size}."
        )

    rng = np.random.default_rng(seed)
    base_colours = rng.integers(0, 256, size=(num_images, 3))
    images = _textured_backgrounds(rng, base_colours, image_size)
    boxes = np.full((num_images, max_boxes, 4), -1.0, np.float32)
    labels = np.full((num_images, max_boxes), -1, np.int32)
    for i in range(num_images):
        placed = []
        for _ in range(rng.integers(0, max_boxes + 1)):
            slot = _free_slot(rng, placed, image_size, min_size, max_size)
            if slot is None:
                continue
            y0, x0, h, w = slot
            kind = rng.integers(num_classes)
            mask = _shape_mask(rng, _SHAPE_KINDS[kind], h, w)
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if rows.size == 0:
                continue
            colour = _contrasting_colour(rng, base_colours[i])
            images[i, :, y0 : y0 + h, x0 : x0 + w][:, mask] = colour[:, None]
            boxes[i, len(placed)] = (
                y0 + rows[0],
                x0 + cols[0],
                y0 + rows[-1] + 1,
                x0 + cols[-1] + 1,
            )
            labels[i, len(placed)] = kind + 1
            placed.append((y0, x0, y0 + h, x0 + w))
    images += _PIXEL_NOISE * rng.standard_normal(images.shape, dtype=np.float32)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), {"boxes": boxes, "labels": labels}


def _check_num_classes(num_classes):
    if not 1 <= num_classes <= len(_SHAPE_KINDS):
        raise ValueError(
            f"`num_classes` must be between 1 and {len(_SHAPE_KINDS)} (the shape kinds "
            f"{', '.join(_SHAPE_KINDS)}), got {num_classes}."
        )


def _textured_backgrounds(rng, base_colours, image_size):
    """float32 `[N, 3, S, S]` backgrounds: base colour plus upsampled random grids."""
    # Channels-first until the end: the texture matmuls produce it without a transpose copy.
    images = np.empty((len(base_colours), 3, image_size, image_size), np.float32)
    images[:] = base_colours[:, :, None, None]
    for grid_size, amplitude in _TEXTURE_OCTAVES:
        grid = amplitude * rng.standard_normal(
            (len(base_colours), 3, grid_size, grid_size), dtype=np.float32
        )
        # Separable bilinear upsampling as two matmuls: much faster than resizing per image.
        upsample = _linear_interpolation_matrix(grid_size, image_size)
        images += upsample @ grid @ upsample.T
    return images


def _linear_interpolation_matrix(grid_size, image_size):
    """float32 `[image_size, grid_size]` weights of linear interpolation at pixel centres."""
    positions = (np.arange(image_size) + 0.5) / image_size * (grid_size - 1)
    grid = np.arange(grid_size)
    columns = [np.interp(positions, grid, one_hot) for one_hot in np.eye(grid_size)]
    return np.stack(columns, axis=1).astype(np.float32)


def _free_slot(rng, placed, image_size, min_size, max_size):
    """A `(y0, x0, h, w)` region overlapping placed boxes by at most `_MAX_OVERLAP`, or None."""
    placed = np.asarray(placed, np.float64).reshape(-1, 4)
    placed_areas = (placed[:, 2] - placed[:, 0]) * (placed[:, 3] - placed[:, 1])
    for _ in range(_PLACEMENT_ATTEMPTS):
        # Log-uniform size and aspect ratio: small and large shapes are equally common.
        size = np.exp(rng.uniform(np.log(min_size), np.log(max_size)))
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        h = int(np.clip(round(size * np.sqrt(aspect)), min_size, max_size))
        w = int(np.clip(round(size / np.sqrt(aspect)), min_size, max_size))
        y0 = int(rng.integers(0, image_size - h + 1))
        x0 = int(rng.integers(0, image_size - w + 1))
        overlap_h = np.minimum(placed[:, 2], y0 + h) - np.maximum(placed[:, 0], y0)
        overlap_w = np.minimum(placed[:, 3], x0 + w) - np.maximum(placed[:, 1], x0)
        intersection = np.clip(overlap_h, 0, None) * np.clip(overlap_w, 0, None)
        if np.all(intersection <= _MAX_OVERLAP * np.minimum(placed_areas, h * w)):
            return y0, x0, h, w
    return None


def _shape_mask(rng, kind, h, w):
    """bool `[h, w]` mask of one shape filling its `h`×`w` box, sampled at pixel centres."""
    if kind == "rectangle":
        return np.ones((h, w), bool)
    if kind == "triangle":
        orientation = rng.integers(4)
        if orientation >= 2:
            # Pointing left or right: an up/down triangle in the transposed box.
            return _upright_triangle_mask(rng, w, h, flip=orientation == 3).T
        return _upright_triangle_mask(rng, h, w, flip=orientation == 1)
    y, x = _pixel_centres(h, w)
    if kind == "ellipse":
        return (2 * y - 1) ** 2 + (2 * x - 1) ** 2 <= 1
    half_bar = rng.uniform(0.12, 0.22)
    return (np.abs(y - 0.5) <= half_bar) | (np.abs(x - 0.5) <= half_bar)


def _upright_triangle_mask(rng, h, w, flip):
    """Triangle with its apex on the top edge (bottom edge if `flip`) and its base opposite."""
    y, x = _pixel_centres(h, w)
    if flip:
        y = 1 - y
    apex = rng.uniform(0.0, 1.0)
    # Apex at (0, apex), base corners at (1, 0) and (1, 1), in box-relative coordinates.
    return (x >= apex * (1 - y)) & (x <= apex + (1 - apex) * y)


def _pixel_centres(h, w):
    """Box-relative `(y [h, 1], x [1, w])` coordinates of the pixel centres, in (0, 1)."""
    return ((np.arange(h) + 0.5) / h)[:, None], ((np.arange(w) + 0.5) / w)[None, :]


def _contrasting_colour(rng, background):
    """A random RGB colour far (L1) from `background`; the farthest candidate if none is."""
    candidates = rng.integers(0, 256, size=(_COLOUR_CANDIDATES, 3))
    distances = np.abs(candidates - background).sum(axis=1)
    far = np.flatnonzero(distances >= _MIN_CONTRAST)
    return candidates[far[0] if far.size else np.argmax(distances)]
