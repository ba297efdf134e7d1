"""Decoders: features in, movement intention out.

:class:`BaseDecoder` is the contract (scikit-learn style ``fit``, online ``step``, versioned
``save``/``load``); variants register themselves by name (``make_decoder("lda", ...)``).
"""

from __future__ import annotations

from .base import (
    DECODER_FILE_FORMAT,
    BaseDecoder,
    Intention,
    decoder_names,
    load_decoder,
    make_decoder,
    register_decoder,
)
from .lda import LDADecoder, transition_matrix

__all__ = [
    "DECODER_FILE_FORMAT",
    "BaseDecoder",
    "Intention",
    "LDADecoder",
    "decoder_names",
    "load_decoder",
    "make_decoder",
    "register_decoder",
    "transition_matrix",
]
