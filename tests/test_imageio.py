"""emolib.imageio: every input form → RGB uint8, EXIF orientation, pixel formats, clear errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from emolib import imageio
from emolib.imageio import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    load_image,
)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims width × height (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def photo_files(photos_dir):
    return sorted(photos_dir.iterdir())


def test_photos_decode_from_every_input_form(photo_files):
    for path in photo_files:
        from_path = load_image(path)
        assert from_path.dtype == np.uint8 and from_path.ndim == 3 and from_path.shape[2] == 3
        assert from_path.flags["C_CONTIGUOUS"]
        with Image.open(path) as reference:
            assert from_path.shape[:2] == (reference.height, reference.width)
        np.testing.assert_array_equal(load_image(str(path)), from_path)
        np.testing.assert_array_equal(load_image(path.read_bytes()), from_path)
        np.testing.assert_array_equal(load_image(bytearray(path.read_bytes())), from_path)
        np.testing.assert_array_equal(load_image(Image.open(path)), from_path)
        np.testing.assert_array_equal(load_image(from_path), from_path)


def test_exif_orientation_is_applied():
    # 60 wide × 40 high, red block in the top-left corner
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())
    out = load_image(data)
    assert out.shape == (60, 40, 3)  # turned upright: now 40 wide × 60 high
    assert out[:10, -10:, 0].mean() > 200 and out[:10, -10:, 1].mean() < 60  # red moved to top-right
    assert out[:10, :10, 0].mean() < 60


def test_broken_exif_does_not_make_a_photo_unreadable():
    pixels = np.full((20, 30, 3), 128, np.uint8)
    data = encode(Image.fromarray(pixels), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    assert load_image(data).shape == (20, 30, 3)


def test_gray_rgba_palette_and_bilevel_become_rgb():
    gray = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1)))
    out = load_image(encode(gray, "PNG"))
    assert out.shape == (8, 16, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(out[0, :, 1], np.arange(0, 256, 16))

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # opaque top half, transparent bottom half
    out = load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out[0, 0], (200, 0, 0))
    np.testing.assert_array_equal(out[3, 3], (255, 255, 255))  # transparent → white, not black

    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    out = load_image(encode(palette, "GIF"))
    np.testing.assert_array_equal(out[0, 1], (200, 100, 50))

    bilevel = Image.fromarray(np.eye(8, dtype=bool))
    out = load_image(encode(bilevel, "PNG"))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [0, 0, 0]

    la = Image.fromarray(np.full((4, 4, 2), (50, 255), np.uint8), "LA")
    assert load_image(encode(la, "PNG"))[0, 0].tolist() == [50, 50, 50]


def test_16_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    out = load_image(encode(image, "PNG"))
    assert out[0, :, 0].tolist() == [0, 127, 255, 3]


def test_cmyk_jpeg_and_tiff_decode():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    out = load_image(encode(cmyk, "JPEG"))
    assert out.shape == (8, 8, 3) and out[4, 4, 0] > 200 and out[4, 4, 1] < 60
    tiff = Image.fromarray(np.full((5, 7, 3), 77, np.uint8))
    assert load_image(encode(tiff, "TIFF"))[0, 0].tolist() == [77, 77, 77]


def test_arrays_of_any_dtype_and_layout():
    assert load_image(np.full((2, 3), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]
    assert load_image(np.full((2, 3, 1), 300.0))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.full((2, 3), 65535, np.uint16))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.ones((2, 3), bool))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.array([[np.nan]], np.float32))[0, 0].tolist() == [0, 0, 0]
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert load_image(rgba)[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(UnsupportedImageError):
        load_image(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(EmptyImageError):
        load_image(np.zeros((0, 4, 3), np.uint8))


@pytest.mark.parametrize("data", [b"", bytearray(), memoryview(b"")])
def test_empty_input_is_a_value_error(data):
    with pytest.raises(EmptyImageError, match="empty"):
        load_image(data)
    assert issubclass(EmptyImageError, ValueError)


@pytest.mark.parametrize("data, kind, words", [
    (b"hello, this is not an image", UnsupportedImageError, "not a readable image"),
    (b"%PDF-1.7\n%\xe2\xe3", UnsupportedImageError, "PDF"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00", UnsupportedImageError, "HEIC"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", UnsupportedImageError, "SVG"),
    (b"\x89PNG\r\n\x1a\n", CorruptImageError, "PNG"),
    (b"\xff\xd8\xff", CorruptImageError, "JPEG"),
])
def test_non_images_get_a_clear_value_error(data, kind, words):
    with pytest.raises(kind, match=words) as error:
        load_image(data)
    assert isinstance(error.value, ValueError)


def test_truncated_files_are_corrupt_images(photo_files):
    for path in photo_files:
        data = path.read_bytes()
        for cut in (len(data) // 2, len(data) - 200):
            with pytest.raises(CorruptImageError, match="corrupt or truncated"):
                load_image(data[:cut])


def test_lazily_opened_truncated_pil_image_is_a_corrupt_image(photo_files):
    data = photo_files[-1].read_bytes()
    lazy = Image.open(io.BytesIO(data[: len(data) // 2]))  # header fine, pixels missing
    with pytest.raises(CorruptImageError, match="cannot decode"):
        load_image(lazy)


def test_formats_outside_the_allow_list_are_refused():
    icon = encode(Image.new("RGB", (16, 16), (1, 2, 3)), "ICO")
    assert Image.open(io.BytesIO(icon)).format == "ICO"  # PIL itself would read it
    with pytest.raises(UnsupportedImageError, match="supported formats"):
        load_image(icon)


def test_pixel_limit_refuses_bombs_before_decoding():
    bomb = png_claiming(60_000, 60_000)  # 3.6 gigapixels in 100 bytes
    assert len(bomb) < 200
    with pytest.raises(ImageTooLargeError, match="too large"):
        load_image(bomb)
    photo = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_image(photo, max_pixels=9_999)
    assert load_image(photo, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((200, 200, 3), np.uint8), max_pixels=1000)
    assert imageio.DEFAULT_MAX_PIXELS == 40_000_000


def test_paths_missing_or_not_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such image"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(UnsupportedImageError, match="not a file"):
        load_image(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("not really a jpeg")
    with pytest.raises(UnsupportedImageError):
        load_image(text)


def test_unknown_source_type_is_a_type_error():
    with pytest.raises(TypeError, match="path, bytes"):
        load_image(12345)
