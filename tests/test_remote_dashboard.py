"""The dashboard's light path: kernels that ask one shared API (a real uvicorn) and never import Keras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import REPO, free_port, serve_api

from emolib import labels, modelcards
from emolib.widgets.app import EmotionDashboard, sample_image_bytes
from emolib.widgets.remote import API_URL_ENV, RemotePredictor


@pytest.fixture(scope="module")
def api_url(tiny_model_dir, yunet_path, tmp_path_factory):
    """``python -m emolib serve`` with the tiny model, on a free loopback port."""
    with serve_api(tmp_path_factory.mktemp("api") / "api.log", tiny_model_dir) as server:
        yield server.url


def _sample() -> np.ndarray:
    from emolib.imageio import load_image

    return load_image(sample_image_bytes())


def test_a_light_kernel_predicts_through_the_api_without_keras(api_url, tiny_model_dir):
    """What a viewer's kernel does under `make dashboard`, in a fresh interpreter."""
    script = textwrap.dedent("""
        import json, sys
        from emolib.modelcards import read_card
        from emolib.widgets import EmotionDashboard
        dashboard = EmotionDashboard(preload=False)
        dashboard.sample_button.click()
        result = dashboard.results.result or {}
        print(json.dumps({"stage": dashboard.stage, "message": dashboard.message.value,
                          "classes": read_card(dashboard.model_select.value)["labels"],
                          "faces": result.get("faces_detected"), "labels": [
                              p["label"] for p in result.get("predictions", [])],
                          "bars": len(result["predictions"][0]["probabilities"]) if result else 0,
                          "loaded": sorted(m for m in ("keras", "tensorflow", "jax", "torch")
                                           if m in sys.modules)}))
    """)
    # as under `make dashboard`: the kernels start with the API's own model
    env = {**os.environ, API_URL_ENV: api_url, "PYTHONPATH": str(REPO), "EMOLIB_MODEL": str(tiny_model_dir)}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["stage"] == "result", report["message"]
    # one bar per class of the model the dashboard chose (its card), labels in French
    assert report["faces"] == 1 and report["bars"] == len(report["classes"]) > 1
    assert report["labels"][0] in {labels.display_name(name) for name in report["classes"]}
    assert report["loaded"] == []  # no Keras, no backend in the viewer's kernel


def test_each_request_gets_its_own_settings(api_url):
    image = _sample()
    default = RemotePredictor(api_url).predict(image)
    assert default["detector"] == "yunet" and default["faces_detected"] == 1
    haar = RemotePredictor(api_url, detector="haar").predict(image)
    assert haar["detector"] == "haar"
    whole = RemotePredictor(api_url, language="en").predict(image[:300, :300], whole_image=True)
    assert whole["detector"] == "none"
    assert whole["predictions"][0]["box"] == {"x": 0, "y": 0, "w": 300, "h": 300}
    assert whole["predictions"][0]["label"] == whole["predictions"][0]["emotion"].capitalize()
    # a shipped 8-class model by name, next to the start-up model in the same server
    eight = RemotePredictor(api_url, model="emolib-ferplus").predict(image)
    assert list(eight["predictions"][0]["probabilities"]) == list(
        modelcards.list_models()["emolib-ferplus"]["labels"])
    assert "contempt" in eight["predictions"][0]["probabilities"]
    assert list(RemotePredictor(api_url).predict(image)["predictions"][0]["probabilities"]) == list(
        default["predictions"][0]["probabilities"])  # the default is untouched by the other requests


def test_a_request_cannot_load_any_file(api_url, tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        RemotePredictor(api_url, model=str(tmp_path)).predict(_sample())


def test_an_unreachable_api_is_a_message_in_the_page():
    dashboard = EmotionDashboard(api_url=f"http://127.0.0.1:{free_port()}")
    dashboard.sample_button.click()
    assert "emolib-error" in dashboard.message.value
    assert "does not answer" in dashboard.message.value and "make dashboard" in dashboard.message.value
    assert dashboard.stage == "choose"
