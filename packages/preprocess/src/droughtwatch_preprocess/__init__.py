"""droughtwatch_preprocess: raw droughtwatch TFRecords -> model-ready arrays.

Pure Python, numpy and google-crc32c; training pipelines and the inference service both
depend on it. See README.md for the processed file format.
"""

from .bands import (
    BANDS,
    CHANNELS,
    CLASS_NAMES,
    IMAGE_SIZE,
    INDICES,
    MAX_RECORD_BYTES,
    PIXELS,
    UNKNOWN_LABEL,
)
from .compression import GZIP, ZLIB
from .errors import (
    BadLabelError,
    BandTooShortError,
    CompressedStreamError,
    CrcMismatchError,
    MalformedExampleError,
    MissingBandError,
    MissingChannelError,
    OversizedRecordError,
    PreprocessError,
    ProcessedFormatError,
    ProcessedVersionError,
    TruncatedRecordError,
)
from .example import Feature, decode_example, encode_example, encode_features
from .ids import image_id
from .indices import compute_indices
from .process import BLANK_MAX, ProcessResult, process_file
from .processed import ProcessedChunk, ProcessedReader, ProcessedWriter, read_processed
from .records import DecodedRecords, decode_records
from .sniff import EMPTY_FILE, looks_like_tfrecord, why_not_tfrecord, why_not_tfrecord_head
from .summaries import (
    FEATURE_PREFIX,
    PixelCounts,
    channel_means,
    channel_means_and_finite,
    feature_column,
)
from .tfrecord import (
    TFRecordWriter,
    iter_records,
    masked_crc32c,
    tfrecord_bytes,
    write_tfrecord,
)

__all__ = [
    "BANDS",
    "BLANK_MAX",
    "CHANNELS",
    "CLASS_NAMES",
    "EMPTY_FILE",
    "FEATURE_PREFIX",
    "GZIP",
    "IMAGE_SIZE",
    "INDICES",
    "MAX_RECORD_BYTES",
    "PIXELS",
    "UNKNOWN_LABEL",
    "ZLIB",
    "BadLabelError",
    "BandTooShortError",
    "CompressedStreamError",
    "CrcMismatchError",
    "DecodedRecords",
    "Feature",
    "MalformedExampleError",
    "MissingBandError",
    "MissingChannelError",
    "OversizedRecordError",
    "PixelCounts",
    "PreprocessError",
    "ProcessResult",
    "ProcessedChunk",
    "ProcessedFormatError",
    "ProcessedReader",
    "ProcessedVersionError",
    "ProcessedWriter",
    "TFRecordWriter",
    "TruncatedRecordError",
    "channel_means",
    "channel_means_and_finite",
    "compute_indices",
    "decode_example",
    "decode_records",
    "encode_example",
    "encode_features",
    "feature_column",
    "image_id",
    "iter_records",
    "looks_like_tfrecord",
    "masked_crc32c",
    "process_file",
    "read_processed",
    "tfrecord_bytes",
    "why_not_tfrecord",
    "why_not_tfrecord_head",
    "write_tfrecord",
]
