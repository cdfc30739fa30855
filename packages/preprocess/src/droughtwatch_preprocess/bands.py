"""The droughtwatch image layout: band names, image size, derived indices and class names.

Every other module (and the inference service) imports these; nothing else spells them out.
"""

from __future__ import annotations

#: Landsat 8 bands as stored in the raw records, in the order they are stacked.
BANDS: tuple[str, ...] = tuple(f"B{i}" for i in range(1, 12))

#: Images are IMAGE_SIZE x IMAGE_SIZE pixels, one uint8 per pixel and band, row-major.
IMAGE_SIZE: int = 65
PIXELS: int = IMAGE_SIZE * IMAGE_SIZE

#: Spectral indices computed from the normalised bands (see indices.py).
INDICES: tuple[str, ...] = ("NDVI", "NDMI", "EVI")

#: The channel order readers of processed files see by default.
CHANNELS: tuple[str, ...] = BANDS + INDICES

#: Forage quality classes (number of animals the spot could feed); label int i names CLASS_NAMES[i].
CLASS_NAMES: tuple[str, ...] = ("0", "1", "2", "3+")

#: Label value for records without a label (inference data).
UNKNOWN_LABEL: int = -1
