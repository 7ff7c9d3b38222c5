"""Safe image decoding: bytes, path, PIL image or array → RGB ``uint8`` array of shape ``(h, w, 3)``.

Everything that reaches the face detector goes through :func:`load_image`, so the rest of emolib can
count on one pixel format. Decoding is defensive: only common photo formats are accepted, the EXIF
orientation is applied, the pixel count is checked *before* any pixel is decoded (decompression
bombs), and every failure is a :class:`ValueError` subclass with a clear message. PIL and OpenCV
exceptions never leak out of this module.

Error classes (all ``ValueError``): :class:`EmptyImageError`, :class:`UnsupportedImageError`,
:class:`CorruptImageError`, :class:`ImageTooLargeError`. The REST API maps them to 400, 415, 400
and 413.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import (  # noqa: F401 - importing a plugin registers its format with PIL
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    PpmImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

#: Largest image accepted, in pixels (width × height); 40 MP is more than any phone camera.
DEFAULT_MAX_PIXELS = 40_000_000
_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PIL formats that are decoded; everything else (EPS, PSD, ICNS …) is refused before decoding.
ALLOWED_FORMATS: tuple[str, ...] = tuple(
    name for name in ("JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM") if name in Image.OPEN
)


class ImageError(ValueError):
    """Base class of the errors raised for unusable image input."""


class EmptyImageError(ImageError):
    """The input holds no bytes (or an array with no pixels)."""


class UnsupportedImageError(ImageError):
    """The input is not an image in one of :data:`ALLOWED_FORMATS` (or not an image at all)."""


class CorruptImageError(ImageError):
    """The input looks like an image but cannot be decoded (truncated or damaged)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than allowed."""


ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` into an RGB ``uint8`` array of shape ``(h, w, 3)``.

    Parameters
    ----------
    source : path, bytes, PIL.Image.Image or numpy.ndarray
        A file path, encoded image bytes, a PIL image, or an array (``(h, w)``, ``(h, w, 1)``,
        ``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA; ``uint8``, ``uint16``, bool, or float in 0..1 or
        0..255).
    max_pixels : int or None
        Refuse images with more pixels than this (``None``: no limit beyond PIL's own).

    Returns
    -------
    numpy.ndarray
        Contiguous RGB ``uint8`` array, EXIF orientation applied.

    Raises
    ------
    EmptyImageError, UnsupportedImageError, CorruptImageError, ImageTooLargeError
        All subclasses of ``ValueError``.
    FileNotFoundError
        If ``source`` is a path that does not exist.
    """
    if isinstance(source, np.ndarray):
        return array_to_rgb(source, max_pixels=max_pixels)
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                source.load()  # an image from Image.open is decoded only now
        except Exception as error:
            raise CorruptImageError(f"cannot decode this {source.format or source.mode} image: "
                                    f"{_reason(error)}") from error
        return _converted(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return decode_image(bytes(source), max_pixels=max_pixels)
    if isinstance(source, str | os.PathLike):
        return decode_image(read_image_file(source), max_pixels=max_pixels)
    raise TypeError(f"cannot read an image from {type(source).__name__}; "
                    "give a path, bytes, a PIL image or a numpy array")


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of the file at ``path`` (``FileNotFoundError`` / ``ValueError`` with the path)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}")
    if not path.is_file():
        raise UnsupportedImageError(f"not a file: {path}")
    try:
        return path.read_bytes()
    except OSError as error:
        raise UnsupportedImageError(f"cannot read {path}: {error.strerror or error}") from error


def open_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open encoded image ``data`` lazily: its header is read and checked (a format of
    :data:`ALLOWED_FORMATS`, at most ``max_pixels``), no pixel is decoded. Close it after use.

    Raises
    ------
    EmptyImageError, UnsupportedImageError, CorruptImageError, ImageTooLargeError
    """
    if not data:
        raise EmptyImageError("empty image: no bytes received")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, EXIF and palette warnings
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"image too large: {error} (emolib's limit is {_mp(max_pixels)})") from error
    except Exception as error:
        raise _not_an_image(data) from error
    try:
        _check_pixels(image.size, max_pixels)
    except ImageError:
        image.close()
        raise
    return image


def check_header(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Refuse ``data`` from its header alone, as :func:`open_image` does. The size of a PNG or JPEG is
    read straight from its header (a dataset of small faces pays next to nothing); other formats, and
    headers that do not parse, are opened by PIL."""
    size = _png_size(data) or _jpeg_size(data)
    if size is None:
        open_image(data, max_pixels=max_pixels).close()
    else:
        _check_pixels(size, max_pixels)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) >= 24 and data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


#: JPEG frame markers (SOF0-15 but DHT, JPG and DAC) whose segment holds the image size
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None where the markers do not parse."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 9 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
    return None


def decode_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image ``data`` (JPEG, PNG, WebP, BMP, GIF, TIFF, PPM) to RGB ``uint8``."""
    with open_image(data, max_pixels=max_pixels) as image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()
        except Image.DecompressionBombError as error:
            raise ImageTooLargeError(f"image too large: {error} (emolib's limit is {_mp(max_pixels)})") \
                from error
        except MemoryError as error:
            raise ImageTooLargeError(f"not enough memory to decode this {image.format} image") from error
        except Exception as error:  # OSError "truncated", SyntaxError, struct.error, ValueError …
            raise CorruptImageError(f"corrupt or truncated {image.format} image: {_reason(error)}") from error
        return _converted(image)


def _converted(image: Image.Image) -> np.ndarray:
    """:func:`_pil_to_rgb`, with any failure but emolib's own errors reported as a corrupt image."""
    try:
        return _pil_to_rgb(image)
    except ImageError:
        raise
    except Exception as error:
        raise CorruptImageError(f"cannot convert this {image.format or ''} image ({image.mode}): "
                                f"{_reason(error)}") from error


def array_to_rgb(array: np.ndarray, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image array (gray, RGB, RGBA; uint8/uint16/bool/float) → contiguous RGB ``uint8``.

    Arrays are taken as RGB (not OpenCV's BGR). Floats whose maximum is at most 1 are scaled by 255,
    others are clipped to 0..255; 16-bit values are scaled down by 257.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise UnsupportedImageError(f"image array must be (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), "
                                    f"not {array.shape}")
    if array.size == 0:
        raise EmptyImageError(f"empty image array of shape {array.shape}")
    _check_pixels((array.shape[1], array.shape[0]), max_pixels)
    array = _to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    elif array.shape[-1] == 4:
        array = _composite_on_white(array[..., :3], array[..., 3])
    return np.ascontiguousarray(array)


# ---------------------------------------------------------------------------------------------------

def _mp(pixels: int | None) -> str:
    return "none" if pixels is None else f"{pixels / 1e6:.1f} MP"


def _check_pixels(size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise EmptyImageError(f"image has no pixels ({width}×{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(f"image too large: {width}×{height} = {width * height / 1e6:.1f} MP, "
                                 f"the limit is {_mp(max_pixels)}")


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode → RGB uint8 array, EXIF orientation applied, transparency composited on white."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not make a readable photo unusable
        pass
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return array_to_rgb(_high_depth_array(image), max_pixels=None)
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if mode == "L":
        return np.repeat(np.asarray(image, dtype=np.uint8)[..., None], 3, axis=-1)
    if (mode == "P" and "transparency" in image.info) or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        return _composite_on_white(rgba[..., :3], rgba[..., 3])
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _high_depth_array(image: Image.Image) -> np.ndarray:
    """16/32-bit integer or float gray image → uint8-range array (16-bit full range scaled to 8 bits)."""
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    values = np.asarray(image)
    if image.mode == "F":
        return values.astype(np.float32)
    # "I" (32-bit int): PNG and TIFF 16-bit gray end up here; values beyond 8 bits are 16-bit samples
    values = np.clip(values, 0, 65535)
    return values.astype(np.uint16) if values.max(initial=0) > 255 else values.astype(np.uint8)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if array.max(initial=0.0) <= 1.0:
            array = array * 255.0
        return np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    raise UnsupportedImageError(f"unsupported image array dtype {array.dtype}")


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    alpha = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "PNG"), (b"\xff\xd8", "JPEG"), (b"GIF8", "GIF"), (b"RIFF", "WebP"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"<svg", "an SVG drawing (vector images are not supported)"),
    (b"<?xml", "an XML document"),
)


def image_signature(head: bytes) -> str | None:
    """The image format whose signature ``head`` (a file's first bytes) starts with, or None."""
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature) and (name != "WebP" or head[8:12] == b"WEBP"):  # RIFF: AVI, WAV too
            return name
    return None


def _not_an_image(data: bytes) -> ImageError:
    """The error for bytes PIL could not even open: a damaged known format, or not an image."""
    name = image_signature(data)
    if name:
        return CorruptImageError(f"corrupt or truncated {name} image: its header cannot be read")
    head = data[:16].lstrip()
    for signature, what in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return UnsupportedImageError(f"not an image: looks like {what}")
    if data[4:8] == b"ftyp":
        return UnsupportedImageError("unsupported format (HEIC/AVIF or video): convert it to JPEG or PNG")
    return UnsupportedImageError(f"not a readable image ({len(data)} bytes); supported formats: "
                                 f"{', '.join(ALLOWED_FORMATS)}")


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text if text else type(error).__name__
