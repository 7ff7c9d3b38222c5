"""emolib: a facial-emotion-recognition research workbook (Keras 3, any backend)."""

__version__ = "0.1.0"
