"""emolib.detect: registry, Haar and YuNet on real photos, the YuNet file (local, cache, download), crops."""

from __future__ import annotations

import hashlib
import io
import math

import cv2
import numpy as np
import pytest

from emolib import detect
from emolib.detect import Face, box_iou, crop_face, crop_faces, expand_box, get_detector
from emolib.files import sha256_file
from emolib.imageio import load_image

PHOTOS = ("astronaut_eileen_collins.png", "grace_hopper.jpg")


@pytest.fixture(scope="module")
def photos(photos_dir):
    return {name: load_image(photos_dir / name) for name in PHOTOS}


@pytest.fixture(scope="module")
def yunet(yunet_path):
    return get_detector("yunet", model_path=yunet_path)


@pytest.fixture(scope="module")
def haar():
    return get_detector("haar")


def composite(photos, boxes_by_photo, placements, size=(600, 900)):
    """Paste face tiles (face + half its size around it) of the photos at (x, y, scale, photo)."""
    canvas = np.full((*size, 3), 120, np.uint8)
    truth = []
    for x, y, scale, name in placements:
        fx, fy, fw, fh = boxes_by_photo[name]
        x0, y0 = max(0, fx - fw // 2), max(0, fy - fh // 2)
        tile = photos[name][y0:fy + fh + fh // 2, x0:fx + fw + fw // 2]
        tile = cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
        truth.append((x + (fx - x0) * scale, y + (fy - y0) * scale, fw * scale, fh * scale))
    return canvas, truth


# -- registry --------------------------------------------------------------------------------------

def test_registry_names_and_errors(yunet, haar):
    assert {"haar", "yunet"} <= set(detect.DETECTORS)
    assert isinstance(haar, detect.HaarDetector) and haar.name == "haar"
    assert isinstance(yunet, detect.YuNetDetector) and yunet.name == "yunet"
    assert get_detector(haar) is haar
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        get_detector("nope")


def test_register_a_custom_detector(photos):
    @detect.register_detector("everything")
    class Everything(detect.Detector):
        name = "everything"

        def _detect(self, image):
            return [Face((0, 0, image.shape[1], image.shape[0]))]

    try:
        faces = get_detector("everything").detect(photos["grace_hopper.jpg"])
        assert [f.box for f in faces] == [(0, 0, 512, 600)]
    finally:
        del detect.DETECTORS["everything"]


def test_garbage_from_a_network_is_dropped_not_raised():
    class Garbage(detect.Detector):
        name = "garbage"

        def _detect(self, image):
            nan, inf = float("nan"), float("inf")
            return [Face((inf, 0.0, 10.0, 10.0)), Face((1e38, 1e38, 3e38, 3e38)), Face((nan, 1.0, 5.0, 5.0)),
                    Face((5.0, 5.0, -4.0, 8.0)), Face((900.0, 900.0, 10.0, 10.0)),
                    Face((-5.0, -5.0, 50.0, 60.0), 0.9, ((1.0, 2.0), (nan, 1.0), (0, 0), (0, 0), (0, 0)))]

    faces = Garbage().detect(np.zeros((200, 200, 3), np.uint8))  # detected at scale 1
    assert [f.box for f in faces] == [(0, 0, 45, 55)]  # only the sane box survives, clipped to the image
    assert faces[0].landmarks is None  # non-finite landmarks are dropped


def test_haar_keeps_the_original_parameters(haar):
    assert (haar.scale_factor, haar.min_neighbors) == (1.1, 5)
    assert haar.cascade.endswith("haarcascade_frontalface_default.xml")


# -- detection on real photos ----------------------------------------------------------------------

@pytest.mark.parametrize("name", PHOTOS)
def test_each_portrait_has_one_face_for_both_detectors(photos, name, yunet, haar):
    image = photos[name]
    found = {}
    for detector in (haar, yunet):
        faces = detector.detect(image)
        assert len(faces) == 1, (detector.name, faces)
        x, y, w, h = faces[0].box
        assert all(isinstance(v, int) for v in faces[0].box)
        assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]
        assert 60 <= w <= 300 and 60 <= h <= 300
        found[detector.name] = faces[0]
    assert box_iou(found["haar"].box, found["yunet"].box) > 0.5
    assert found["haar"].landmarks is None and found["haar"].score is None
    assert 0.7 <= found["yunet"].score <= 1.0
    assert len(found["yunet"].landmarks) == 5
    (rx, ry), (lx, ly) = found["yunet"].landmarks[:2]
    x, y, w, h = found["yunet"].box
    assert x < rx < lx < x + w and y < ry < y + h / 2  # eyes inside the box, upper half, right eye first


def test_composite_with_several_faces(photos, yunet, haar):
    boxes = {name: yunet.detect(img)[0].box for name, img in photos.items()}
    placements = [(20, 30, 1.0, "grace_hopper.jpg"), (420, 40, 0.8, "astronaut_eileen_collins.png"),
                  (650, 300, 0.6, "grace_hopper.jpg"), (200, 380, 0.9, "astronaut_eileen_collins.png")]
    canvas, truth = composite(photos, boxes, placements)
    for detector in (yunet, haar):
        faces = detector.detect(canvas)
        assert len(faces) == 4, detector.name
        for true_box in truth:
            assert max(box_iou(f.box, true_box) for f in faces) > 0.4, (detector.name, true_box)
        areas = [f.box[2] * f.box[3] for f in faces]
        assert areas == sorted(areas, reverse=True)  # largest first


def test_blank_and_tiny_images_have_no_faces(yunet, haar):
    for detector in (yunet, haar):
        assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
        assert detector.detect(np.full((300, 300, 3), 255, np.uint8)) == []
        assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []
        assert detector.detect(np.zeros((3, 5000, 3), np.uint8)) == []  # shrinks below 1 px high
        assert detector.detect(np.zeros((20, 30000, 3), np.uint8)) == []


def test_detectors_want_rgb_uint8(yunet):
    with pytest.raises(ValueError, match="RGB uint8"):
        yunet.detect(np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        yunet.detect(np.zeros((100, 100, 3), np.float32))


def test_large_images_are_downscaled_and_boxes_scaled_back(photos, yunet):
    image = photos["astronaut_eileen_collins.png"]
    small = yunet.detect(image)[0]
    big_image = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1536 × 1536
    assert yunet.detection_scale(*big_image.shape[:2]) == pytest.approx(640 / 1536)
    big = yunet.detect(big_image)
    assert len(big) == 1
    scaled = tuple(v * 3 for v in small.box)
    assert box_iou(big[0].box, scaled) > 0.8
    assert big[0].landmarks[0][0] == pytest.approx(small.landmarks[0][0] * 3, abs=12)


def test_detection_scale_from_max_side_and_min_face(yunet_path):
    full = get_detector("yunet", model_path=yunet_path, max_side=None)
    assert full.detection_scale(3000, 4000) == 1.0
    capped = get_detector("yunet", model_path=yunet_path, max_side=1000)
    assert capped.detection_scale(3000, 4000) == pytest.approx(0.25)
    assert capped.detection_scale(300, 400) == 1.0
    quick = get_detector("yunet", model_path=yunet_path, max_side=1000, min_face=80)
    assert quick.detection_scale(3000, 4000) == pytest.approx(0.25)
    # min_face only speeds up large images: never below MIN_DETECTION_SIDE on the shorter side
    assert quick.detection_scale(300, 400) == pytest.approx(detect.MIN_DETECTION_SIDE / 300)
    assert quick.detection_scale(2000, 2000) == pytest.approx(0.25)
    assert get_detector("haar", min_face=48).detection_scale(500, 500) == pytest.approx(0.5)


def test_small_images_are_enlarged_to_the_detection_side(yunet_path):
    quick = get_detector("yunet", model_path=yunet_path, min_face=40)
    assert quick.detection_scale(48, 48) == pytest.approx(detect.MIN_DETECTION_SIDE / 48)
    assert quick.detection_scale(60, 90) == pytest.approx(detect.MIN_DETECTION_SIDE / 60)
    assert quick.detection_scale(40, 3000) == pytest.approx(640 / 3000)  # max_side wins


def test_a_face_crop_is_found_at_any_min_face(photos, yunet_path):
    """A tightly cropped small face (a FER-style 48 px crop) is not shrunk out of sight by min_face."""
    reference = get_detector("yunet", model_path=yunet_path, max_side=None)
    for image in photos.values():
        x, y, w, h = reference.detect(image)[0].box
        crop = cv2.resize(image[y:y + h, x:x + w], (48, 48), interpolation=cv2.INTER_AREA)
        for min_face in (None, 40, 80):
            faces = get_detector("yunet", model_path=yunet_path, min_face=min_face).detect(crop)
            assert len(faces) == 1, min_face
            assert faces[0].box[2] > 24  # most of the crop


def test_detection_does_not_depend_on_the_images_before(photos, yunet_path):
    """The same image gives the same faces whatever came before it (FaceDetectorYN's padding)."""
    rng = np.random.default_rng(0)
    images = []
    for image in photos.values():
        for side in (97, 150, 203, 333):
            scale = side / max(image.shape[:2])
            images.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    images += [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((110, 170), (250, 190))]

    def run(order):
        detector = get_detector("yunet", model_path=yunet_path, score_threshold=0.5)
        return {i: [(f.box, round(f.score, 5)) for f in detector.detect(images[i])] for i in order}

    forward = run(range(len(images)))
    backward = run(reversed(range(len(images))))
    shuffled = run(rng.permutation(len(images)))
    assert forward == backward == shuffled
    assert sum(map(len, forward.values())) >= 2 * len(photos)


def test_a_large_image_without_a_found_face_is_looked_at_again_larger(photos, yunet_path):
    """A 40 px face in a 2400×1800 photo is 11 px at the 640 px cap: missed; the second look (at twice
    the cap) finds it, and says where in the original pixels. (Score threshold 0.7: cases chosen where
    the first look misses.)"""
    image = photos["grace_hopper.jpg"]
    x, y, w, h = get_detector("yunet", model_path=yunet_path, max_side=None).detect(image)[0].box
    scale = 40 / w
    tile = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((1800, 2400, 3), 120, np.uint8)
    canvas[900:900 + tile.shape[0], 1200:1200 + tile.shape[1]] = tile
    first_look_only = get_detector("yunet", model_path=yunet_path, score_threshold=0.7, second_look=False)
    assert first_look_only.detect(canvas) == []
    faces = get_detector("yunet", model_path=yunet_path, score_threshold=0.7).detect(canvas)
    assert len(faces) == 1
    assert box_iou(faces[0].box, (1200 + x * scale, 900 + y * scale, w * scale, h * scale)) > 0.5


@pytest.mark.parametrize("name", PHOTOS)
def test_a_dark_image_without_a_found_face_is_looked_at_again_brightened(photos, name, yunet_path):
    image = photos[name]
    reference = get_detector("yunet", model_path=yunet_path).detect(image)[0].box
    noise = np.random.default_rng(0).normal(0, 1.5, image.shape)
    dark = np.clip(image * 0.04 + noise, 0, 255).astype(np.uint8)  # mean gray level 3-4
    assert dark.mean() < detect.DARK_MEAN
    first_look_only = get_detector("yunet", model_path=yunet_path, score_threshold=0.7, second_look=False)
    assert first_look_only.detect(dark) == []
    faces = get_detector("yunet", model_path=yunet_path, score_threshold=0.7).detect(dark)
    assert len(faces) == 1 and box_iou(faces[0].box, reference) > 0.6


def test_brighten_lifts_the_mean_and_keeps_the_order_of_gray_levels():
    dark = np.random.default_rng(0).integers(0, 40, (64, 64, 3), dtype=np.uint8)
    bright = detect.brighten(dark)
    assert bright.dtype == np.uint8 and bright.shape == dark.shape
    assert abs(bright.mean() / 255 - detect.BRIGHT_MEAN) < 0.08
    order = np.argsort(dark.ravel(), kind="stable")
    assert np.all(np.diff(bright.ravel()[order].astype(int)) >= 0)  # monotone: no level swaps


def test_min_face_still_finds_the_portrait_faces(photos, yunet_path):
    quick = get_detector("yunet", model_path=yunet_path, min_face=40)
    reference = get_detector("yunet", model_path=yunet_path, max_side=None)
    for image in photos.values():
        faces = quick.detect(image)
        assert len(faces) == 1
        assert box_iou(faces[0].box, reference.detect(image)[0].box) > 0.7


# -- the YuNet model file --------------------------------------------------------------------------

def test_sha256_constant_is_the_real_file(yunet_path):
    assert sha256_file(yunet_path) == detect.YUNET_SHA256
    assert detect.YUNET_SHA256.startswith("8f2383e4") and detect.YUNET_SHA256.endswith("52fa4")
    assert detect.YUNET_URL.startswith("https://github.com/opencv/opencv_zoo/")


@pytest.fixture
def no_local_yunet(tmp_path, monkeypatch):
    """No YuNet anywhere: empty cache, no model dir, a shared folder without models."""
    monkeypatch.setenv("EMOLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMOLIB_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.delenv("EMOLIB_MODEL_DIR", raising=False)
    return tmp_path / "cache"


def test_default_detector_falls_back_to_haar_without_the_file(no_local_yunet, yunet_path, monkeypatch):
    assert detect.find_yunet() is None
    assert detect.default_detector_name() == "haar"
    assert get_detector().name == "haar"
    with pytest.raises(FileNotFoundError, match="not found"):
        detect.yunet_model_path(download=False)
    monkeypatch.setenv("EMOLIB_MODEL_DIR", str(yunet_path.parent))
    assert detect.find_yunet() == yunet_path
    assert detect.default_detector_name() == "yunet"
    assert get_detector().name == "yunet"


def test_explicit_paths(yunet_path, tmp_path):
    assert detect.yunet_model_path(yunet_path) == yunet_path
    assert detect.yunet_model_path(yunet_path.parent) == yunet_path  # a directory holding the file
    with pytest.raises(FileNotFoundError):
        detect.yunet_model_path(tmp_path / "nope.onnx")


def test_download_from_a_file_url_into_the_cache(no_local_yunet, yunet_path):
    path = detect.yunet_model_path(url=yunet_path.as_uri())
    assert path == no_local_yunet / detect.YUNET_FILE
    assert sha256_file(path) == detect.YUNET_SHA256
    assert detect.find_yunet() == path  # found in the cache next time, no download
    assert list(no_local_yunet.iterdir()) == [path]  # no partial files left
    assert get_detector("yunet").detect(np.zeros((64, 64, 3), np.uint8)) == []


def test_download_is_not_repeated_when_cached(no_local_yunet, yunet_path):
    calls = []

    def fetch(url):
        calls.append(url)
        return io.BytesIO(yunet_path.read_bytes())

    detect.download_file("https://example.invalid/y.onnx", no_local_yunet / "y.onnx", detect.YUNET_SHA256,
                         fetch=fetch)
    detect.download_file("https://example.invalid/y.onnx", no_local_yunet / "y.onnx", detect.YUNET_SHA256,
                         fetch=fetch)
    assert len(calls) == 1


def test_download_with_a_wrong_digest_keeps_nothing(no_local_yunet):
    payload = b"not the model"

    with pytest.raises(ValueError, match="sha256 mismatch"):
        detect.yunet_model_path(fetch=lambda url: io.BytesIO(payload))
    assert not any(no_local_yunet.iterdir())
    right = hashlib.sha256(payload).hexdigest()
    with pytest.raises(ValueError, match="exceeds"):
        detect.download_file("x", no_local_yunet / "f", right, fetch=lambda url: io.BytesIO(payload),
                             max_bytes=4)
    assert not any(no_local_yunet.iterdir())


def test_a_failed_download_is_a_clear_file_not_found_error(no_local_yunet, tmp_path, monkeypatch):
    import urllib.error

    with pytest.raises(FileNotFoundError, match="could not download .*EMOLIB_MODEL_DIR"):
        detect.yunet_model_path(url=(tmp_path / "nowhere.onnx").as_uri())

    def offline(url):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(detect.yunet, "_urlopen", offline)
    with pytest.raises(FileNotFoundError, match="name resolution"):
        get_detector("yunet")
    assert not any(no_local_yunet.iterdir())


def test_a_corrupt_cached_file_is_not_used(no_local_yunet, yunet_path):
    no_local_yunet.mkdir(parents=True)
    (no_local_yunet / detect.YUNET_FILE).write_bytes(b"truncated")
    assert detect.find_yunet() is None
    path = detect.yunet_model_path(url=yunet_path.as_uri())  # replaced by a good download
    assert sha256_file(path) == detect.YUNET_SHA256


# -- crops -----------------------------------------------------------------------------------------

def test_expand_box_margin_and_square():
    assert expand_box((10, 20, 30, 40)) == (10, 20, 30, 40)
    assert expand_box((10, 20, 30, 40), margin=0.5) == pytest.approx((-5, 0, 60, 80))
    assert expand_box((10, 20, 30, 40), square=True) == pytest.approx((5, 20, 40, 40))


def test_crop_shapes_channels_and_borders(photos):
    image = photos["grace_hopper.jpg"]
    face = Face((183, 120, 170, 213))
    gray = crop_face(image, face, (48, 48), channels=1)
    assert gray.shape == (48, 48, 1) and gray.dtype == np.uint8
    rgb = crop_face(image, face, (64, 32), channels=3)
    assert rgb.shape == (64, 32, 3)
    batch = crop_faces(image, [face, face], (48, 48), channels=1, margin=0.2, square=True)
    assert batch.shape == (2, 48, 48, 1)
    assert crop_faces(image, [], (48, 48)).shape == (0, 48, 48, 1)
    # a box running off the image is padded with its border, not shifted or squashed
    corner = crop_face(image, Face((-50, -50, 100, 100)), (100, 100), channels=3)
    assert corner.shape == (100, 100, 3)
    np.testing.assert_array_equal(corner[60:, 60:], image[10:50, 10:50])
    np.testing.assert_array_equal(corner[0, 0], image[0, 0])
    # the whole image as one face is just a resize
    whole = crop_face(image, Face((0, 0, 512, 600)), (60, 60), channels=3)
    np.testing.assert_array_equal(whole, cv2.resize(image, (60, 60), interpolation=cv2.INTER_AREA))


def test_eye_alignment_levels_the_eyes(photos, yunet_path):
    detector = get_detector("yunet", model_path=yunet_path, max_side=None)
    image = photos["grace_hopper.jpg"]
    height, width = image.shape[:2]
    tilted = cv2.warpAffine(image, cv2.getRotationMatrix2D((width / 2, height / 2), 20, 1.0), (width, height),
                            borderMode=cv2.BORDER_REPLICATE)
    face = detector.detect(tilted)[0]
    assert detect.eye_angle(face) < -10  # rotated counter-clockwise: the image-right eye is higher
    plain = crop_face(tilted, face, (240, 240), channels=3, margin=0.4, square=True)
    aligned = crop_face(tilted, face, (240, 240), channels=3, margin=0.4, square=True, align=True)
    angle_plain = detect.eye_angle(detector.detect(plain)[0])
    angle_aligned = detect.eye_angle(detector.detect(aligned)[0])
    assert abs(angle_plain) > 12
    assert abs(angle_aligned) < 5
    # Haar faces have no landmarks: alignment is a no-op
    box_only = Face(face.box)
    np.testing.assert_array_equal(crop_face(tilted, box_only, (48, 48), align=True),
                                  crop_face(tilted, box_only, (48, 48)))
    assert detect.eye_angle(box_only) == 0.0
    assert math.isfinite(detect.eye_angle(face))
