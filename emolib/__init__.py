"""emolib: a facial-emotion-recognition research workbook (Keras 3, any backend)."""

from emolib import backend as _backend

__version__ = "0.1.0"

_backend.apply()  # this environment's Keras backend, before anything imports Keras (see emolib.backend)
