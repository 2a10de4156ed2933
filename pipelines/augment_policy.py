"""The names a recipe's ``data.augment`` accepts, importable without TensorFlow.

``pipelines.augment`` implements each of them (its ``TRANSFORMS``); listings
such as ``convforge datasets`` read the names from here so they answer at once.

Example:
    >>> "mirror" in AUGMENTATIONS, ALIASES["flip"]
    (True, 'mirror')
"""

AUGMENTATIONS = ("mirror", "random_crop", "rotate", "shear", "elastic", "grid_distortion", "colour_shift", "pca_colour")
ALIASES = {"color_shift": "colour_shift", "pca_color": "pca_colour", "flip": "mirror", "rotation": "rotate"}
