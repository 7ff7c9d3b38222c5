"""A predictor that asks emolib's REST API (:mod:`emolib.serve`), so a dashboard kernel never loads Keras.

``make dashboard`` starts one API on loopback and gives every dashboard kernel its address in
``$EMOLIB_API_URL``: the model lives once in the API's process, and each viewer's kernel only draws
widgets and sends photos (see :mod:`emolib.dashboard`). Only the standard library talks HTTP here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

import numpy as np

from emolib.widgets.results import encode

#: Environment variable holding the API's base URL (e.g. ``http://127.0.0.1:8867``) for the dashboard.
API_URL_ENV = "EMOLIB_API_URL"


class RemotePredictor:
    """``predict(image, whole_image=)`` answered by ``POST {url}/predict`` with this viewer's settings.

    Parameters
    ----------
    url : str
        Base URL of a running ``emolib serve``.
    model : str, optional
        Model directory or shipped model's name the API should use (None: its start-up model).
    detector : {None, "yunet", "haar"}
        Face detector (None: the API's).
    flip_tta : bool
        Average with the mirror image.
    language : {"fr", "en"}
        Language of the ``label`` field.
    timeout : float
        Seconds to wait for an answer.
    """

    def __init__(self, url: str, model: str | None = None, detector: str | None = None,
                 flip_tta: bool = False, language: str = "fr", timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.params = {"flip_tta": str(bool(flip_tta)).lower(), "language": language}
        if model:
            self.params["model"] = str(model)
        if detector:
            self.params["detector"] = detector
        self._explained: tuple[np.ndarray, dict] | None = None  # the last photo explained, its result
        self._call("GET", "/test")  # fail now, with a clear message, if the API is not there

    def predict(self, image, whole_image: bool = False, explain: bool = False) -> dict:
        """The result dict of an RGB uint8 array, sent losslessly (PNG); with ``explain``, saliency too.

        Raises
        ------
        ValueError
            When the API refuses the photo or the settings (its ``detail`` as the message).
        ConnectionError
            When the API does not answer.
        """
        boundary = uuid.uuid4().hex
        body = b"".join([
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="photo.png"\r\n',
            b"Content-Type: image/png\r\n\r\n",
            encode(np.asarray(image), fmt="png"),
            f"\r\n--{boundary}--\r\n".encode(),
        ])
        query = urllib.parse.urlencode({**self.params, "whole_image": str(bool(whole_image)).lower(),
                                        **({"explain": "true"} if explain else {})})
        return self._call("POST", f"/predict?{query}", body,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def explain_face(self, image, face: dict) -> dict:
        """The ``"saliency"`` entry of one face of ``image``: the API explains the photo (all its faces,
        once per photo) and the face with the same box is picked, as ``EmotionPredictor.explain_face``."""
        if self._explained is None or self._explained[0] is not image:
            self._explained = (image, self.predict(image, explain=True))
        for candidate in self._explained[1]["predictions"]:
            if candidate["box"] == face["box"]:
                return candidate["saliency"]
        raise ValueError("this face is not found again in the photo (a box drawn by hand?)")

    def _call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read()).get("detail")
            except ValueError:
                detail = None
            if 400 <= error.code < 500:
                raise ValueError(detail or f"the prediction server refused it ({error.code})") from None
            raise ConnectionError(f"the prediction server at {self.url} failed ({error.code}): "
                                  f"{detail or error.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ConnectionError(f"the prediction server at {self.url} does not answer ({reason}): "
                                  "restart `make dashboard`") from None
