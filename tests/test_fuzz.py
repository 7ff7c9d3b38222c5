"""Fuzzing: mutated, truncated and random bytes at the decoder, the predictor and ``POST /predict``.

The only exception allowed out of decode + predict is the documented ``ValueError``; the API answers
200 or a 4xx with a ``detail``, never a 500. Seeds are the two real photos (PNG and JPEG) and small
re-encodings of them in every accepted format, so most mutations reach deep into the decoders.
Examples: 1,000 (decode) + 700 (decode + predict) + 600 (API) = 2,300.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from emolib import imageio

FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _seeds(photos_dir) -> list[bytes]:
    seeds = [path.read_bytes() for path in sorted(photos_dir.iterdir())]
    with Image.open(photos_dir / "grace_hopper.jpg") as photo:
        small = photo.convert("RGB").resize((96, 112))
    for fmt, options in (("PNG", {}), ("JPEG", {"quality": 80}), ("JPEG", {"progressive": True}),
                         ("WEBP", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("PPM", {})):
        buffer = io.BytesIO()
        small.save(buffer, fmt, **options)
        seeds.append(buffer.getvalue())
    gray16 = Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60)
    buffer = io.BytesIO()
    gray16.save(buffer, "PNG")
    seeds.append(buffer.getvalue())
    return seeds


@pytest.fixture(scope="module")
def seeds(photos_dir):
    return _seeds(photos_dir)


@st.composite
def mutated(draw, seeds):
    """Bytes derived from a real image: truncated, bit-flipped, overwritten, spliced, or random."""
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete", "splice", "random",
                                 "header"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(seeds)))
    size = len(data)
    if kind == "truncate":
        return bytes(data[:draw(st.integers(0, size))])
    if kind == "header":  # damage only the first bytes, where sizes and formats live
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(0, min(64, size - 1)))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 20))):
            position = draw(st.integers(0, size - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "overwrite":
        start = draw(st.integers(0, size - 1))
        patch = draw(st.binary(min_size=1, max_size=64))
        data[start:start + len(patch)] = patch
        return bytes(data)
    if kind == "insert":
        start = draw(st.integers(0, size))
        return bytes(data[:start] + draw(st.binary(min_size=1, max_size=64)) + data[start:])
    if kind == "delete":
        start = draw(st.integers(0, size - 1))
        return bytes(data[:start] + data[start + draw(st.integers(1, 256)):])
    other = draw(st.sampled_from(seeds))  # splice: one file's head on another's body
    return bytes(data[:draw(st.integers(0, size))] + other[draw(st.integers(0, len(other))):])


@pytest.fixture(scope="module")
def predictor(tiny_model_dir, yunet_path):
    from emolib import detect, models
    from emolib.predict import EmotionPredictor

    return EmotionPredictor(models.load_model(tiny_model_dir),
                            detector=detect.get_detector("yunet", model_path=yunet_path))


@pytest.fixture(scope="module")
def client(predictor):
    from fastapi.testclient import TestClient

    from emolib.serve import create_app

    with TestClient(create_app(predictor=predictor), raise_server_exceptions=False) as test_client:
        yield test_client


def test_decoder_gives_rgb_or_a_value_error(seeds):
    outcomes = {"decoded": 0, "refused": 0}

    @settings(FUZZ, max_examples=1000)
    @given(data=mutated(seeds))
    def check(data):
        try:
            rgb = imageio.load_image(data)
        except ValueError as error:
            assert str(error)
            outcomes["refused"] += 1
            return
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size > 0
        outcomes["decoded"] += 1

    check()
    assert outcomes["decoded"] > 50 and outcomes["refused"] > 50, outcomes  # both paths exercised


def test_predict_gives_a_result_or_a_value_error(seeds, predictor):
    outcomes = {"ok": 0, "refused": 0}

    @settings(FUZZ, max_examples=700)
    @given(data=mutated(seeds))
    def check(data):
        try:
            result = predictor.predict(data)
        except ValueError:
            outcomes["refused"] += 1
            return
        assert result["faces_detected"] == len(result["predictions"])
        outcomes["ok"] += 1

    check()
    assert outcomes["ok"] > 30 and outcomes["refused"] > 30, outcomes


def test_api_never_answers_500(seeds, client):
    statuses: dict[int, int] = {}

    @settings(FUZZ, max_examples=600)
    @given(data=mutated(seeds))
    def check(data):
        response = client.post("/predict", files={"file": ("upload.bin", data, "application/octet-stream")})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code in (200, 400, 413, 415), response.text
        body = response.json()
        if response.status_code == 200:
            assert body["faces_detected"] == len(body["predictions"])
        else:
            assert isinstance(body["detail"], str) and body["detail"]

    check()
    assert statuses.get(200, 0) > 20 and sum(v for k, v in statuses.items() if k >= 400) > 20, statuses
