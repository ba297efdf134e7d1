"""Decoders: features in, a :class:`DecoderOutput` (state, probabilities, continuous outputs) out.

:class:`BaseDecoder` is the contract (scikit-learn style ``fit``, online ``step``, versioned
``save``/``load``, a declared :class:`OutputSchema`); variants register themselves by name
(``make_decoder("lda", ...)``) or through the entry-point group ``neuroloop.decoders``.
"""

from __future__ import annotations

from .base import (
    DECODER_FILE_FORMAT,
    READABLE_DECODER_FORMATS,
    BaseDecoder,
    DecoderOutput,
    Intention,
    OutputSchema,
    decoder_names,
    load_decoder,
    make_decoder,
    register_decoder,
)
from .biomarker import BiomarkerDecoder
from .lda import LDADecoder, transition_matrix

__all__ = [
    "DECODER_FILE_FORMAT",
    "READABLE_DECODER_FORMATS",
    "BaseDecoder",
    "DecoderOutput",
    "Intention",
    "BiomarkerDecoder",
    "LDADecoder",
    "OutputSchema",
    "decoder_names",
    "load_decoder",
    "make_decoder",
    "register_decoder",
    "transition_matrix",
]
