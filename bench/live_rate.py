"""Update rate of the dashboard's 🎥 Live mode: camera frames sent → results drawn, in Chromium.

    .venv/bin/python bench/live_rate.py [--seconds 15] [--windows 3]

Starts the dashboard as ``make dashboard`` does (``python -m emolib dashboard``: the shared prediction API,
then Voilà; the shipped default model, YuNet), opens it in Debian's Chromium whose fake camera plays a clip
of two faces sliding across a 640×480 frame (made from the shared photos), switches to 🎥 Live, waits for
the model to be loaded and 10 results drawn, then counts the results drawn over ``--windows`` windows of
``--seconds`` each. Latency is the time from a frame being grabbed to its result
being drawn (the browser's own clock). Prints a markdown table; only loopback traffic.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from helpers import CHROMIUM, LOAD_MS, dashboard_server, fake_camera_args, open_dashboard  # noqa: E402

from emolib import video as V  # noqa: E402
from emolib.widgets.app import DEFAULT_MODEL_DIR  # noqa: E402

SHARED = Path(os.environ.get("EMOLIB_SHARED", REPO.parent / "shared")).resolve()
OVERLAY = "document.querySelector('.emolib-camera-panel .emolib-webcam-overlay')"


def counts(page) -> dict:
    return page.evaluate(f"() => ({{sent: Number({OVERLAY}.dataset.sent),"
                         f" drawn: Number({OVERLAY}.dataset.drawn),"
                         f" latencies: {OVERLAY}.latencies.slice(), now: performance.now()}})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of one measuring window")
    parser.add_argument("--windows", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="emolib-live-"))
    photos = SHARED / "data" / "photos"
    clip = V.make_demo_clip(work / "two-faces.y4m", [photos / "grace_hopper.jpg",
                                                     photos / "astronaut_eileen_collins.png"],
                            seconds=8, face_height=240)
    rows = []
    with dashboard_server(work / "voila.log", DEFAULT_MODEL_DIR) as server:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=fake_camera_args(clip))
            _, page = open_dashboard(browser, server)
            page.click("button.emolib-mode-live")
            page.wait_for_function(f"() => Number({OVERLAY}.dataset.drawn) >= 10", timeout=3 * LOAD_MS)
            for _ in range(args.windows):
                start, started = counts(page), time.monotonic()
                page.wait_for_timeout(args.seconds * 1000)
                end = counts(page)
                elapsed = (end["now"] - start["now"]) / 1000
                drawn = end["drawn"] - start["drawn"]
                new = end["latencies"][-drawn:] if drawn else []
                rows.append({"drawn": drawn, "seconds": elapsed, "rate": drawn / elapsed,
                             "sent": end["sent"] - start["sent"], "latency_ms": statistics.median(new),
                             "p90_ms": sorted(new)[int(0.9 * (len(new) - 1))],
                             "in_flight": end["sent"] - end["drawn"], "wall": time.monotonic() - started})
            browser.close()
    load = os.getloadavg()[0]
    print(f"Live mode, `python -m emolib dashboard` (API + Voilà) + Chromium fake camera (640×480 clip of "
          f"two faces, frames sent 480 px wide); {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}\n")
    print("| window | results drawn | seconds | updates/s | frames sent | median latency (ms) | p90 (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i, row in enumerate(rows, start=1):
        print(f"| {i} | {row['drawn']} | {row['seconds']:.1f} | {row['rate']:.1f} | {row['sent']} | "
              f"{row['latency_ms']:.0f} | {row['p90_ms']:.0f} |")
    rates = [row["rate"] for row in rows]
    print(f"\nMedian {statistics.median(rates):.1f} updates/s, best {max(rates):.1f} (target ≥ 5: "
          f"{'met' if statistics.median(rates) >= 5 else 'not met'}); frames in flight at the end: "
          f"{rows[-1]['in_flight']} (never more than 1 by construction).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
