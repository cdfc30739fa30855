"""The droughtwatch image layout: band names, image size, derived indices and class names.

Every other module (and the inference service) imports these; nothing else spells them out.
"""

from __future__ import annotations

#: Landsat 8 bands as stored in the raw records, in the order they are stacked.
BANDS: tuple[str, ...] = tuple(f"B{i}" for i in range(1, 12))

#: Images are IMAGE_SIZE x IMAGE_SIZE pixels, one uint8 per pixel and band, row-major.
IMAGE_SIZE: int = 65
PIXELS: int = IMAGE_SIZE * IMAGE_SIZE

#: The longest payload one raw record may declare. A droughtwatch record is about 46.6 kB (11
#: bands of 4,225 bytes, a label, a filename); a band may hold more than its 65x65 image (only
#: the first 4,225 bytes are used), so the bound is generous: 11 bands of up to 1 MiB each
#: (a 1024x1024 uint8 image) plus 1 MiB for the other features, 12 MiB in all. A length field
#: above it is corrupt, and checking it before allocating keeps a corrupt length (2**40,
#: 2**63) from asking for terabytes.
MAX_BAND_BYTES: int = 1 << 20
MAX_RECORD_BYTES: int = len(BANDS) * MAX_BAND_BYTES + (1 << 20)

#: Spectral indices computed from the normalised bands (see indices.py).
INDICES: tuple[str, ...] = ("NDVI", "NDMI", "EVI")

#: The channel order readers of processed files see by default.
CHANNELS: tuple[str, ...] = BANDS + INDICES

#: Forage quality classes (number of animals the spot could feed); label int i names CLASS_NAMES[i].
CLASS_NAMES: tuple[str, ...] = ("0", "1", "2", "3+")

#: Label value for records without a label (inference data).
UNKNOWN_LABEL: int = -1
