"""The dashboard under a room's load: viewers open the page, ✨ Try a sample, and close it.

For each design it starts ``python -m emolib dashboard`` on a free port:

* ``after`` — what ``make dashboard`` runs: one shared API, light kernels, preheated pool, culling
  (here with a short ``--cull-disconnected`` so that the run stays short); the measuring starts once
  Voilà's pool is full;
* ``before`` — the design before issue #27: every page's kernel loads the model itself, no pool, no
  culling (``--in-process --pool-size 0 --cull-idle 0``).

Then N viewers one after another, and M at once. It prints, per design and phase: the memory (RSS) of
the server's whole process tree (launcher, API, Voilà, kernels) at start, at its peak, right after the
viewers closed and after the cull wait; the extra memory per viewer when they come at once; time to
first result (page opened → result shown, and click → result) median and p95; and errors. A second
table breaks a page's first result into its steps (page answered, page loaded, dashboard visible, click →
result), counts the pages that got one of Voilà's preheated kernels, and gives the CPU seconds the server's
tree and the viewers used. Markdown tables on stdout.

A viewer is a Chromium page (``--client chromium``, the default: the whole experience, but on this
machine the pages' JavaScript shares the server's cores) or a websocket client (``--client websocket``:
it gets the page and every file a Chromium page gets, then drives the widgets over the kernel's
websocket as the page's widget manager does: the server's part of a first result, as when each viewer's
browser runs on their own machine).

    python bench/dashboard_load.py --design after before --sequential 5 --concurrent 10
    python bench/dashboard_load.py --design after --client chromium websocket --concurrent 10
    python bench/dashboard_load.py --design after --repo . /tmp/old-checkout   # before/after two commits
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

from emolib.dashboard import stop_process  # noqa: E402

DESIGNS = {
    "after": ["--cull-disconnected=10", "--cull-interval=2"],
    "before": ["--in-process", "--pool-size=0", "--cull-idle=0"],
}
TIMEOUT_MS = 300_000


def tree_rss_mb(root: psutil.Process) -> float:
    """RSS of ``root`` and all its descendants, in MB."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def api_rss_mb(root: psutil.Process) -> float | None:
    """RSS of the shared prediction API (the dashboard's ``emolib serve`` child) in MB; None without one."""
    for process in root.children(recursive=True):
        try:
            command = process.cmdline()
            if "emolib" in command and "serve" in command:
                return process.memory_info().rss / 1e6
        except psutil.Error:
            pass
    return None


def _mb(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def tree_cpu_s(root: psutil.Process, skip: psutil.Process | None = None) -> float:
    """CPU seconds (user + system) used so far by ``root``'s living descendants, without ``skip``'s tree."""
    skipped = {skip.pid, *(c.pid for c in skip.children(recursive=True))} if skip else set()
    total = 0.0
    for process in root.children(recursive=True):
        if process.pid in skipped:
            continue
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def kernel_count(root: psutil.Process) -> int:
    count = 0
    for process in root.children(recursive=True):
        try:
            count += any("ipykernel_launcher" in part for part in process.cmdline())
        except psutil.Error:
            pass
    return count


class Sampler(threading.Thread):
    """Samples the tree's RSS every ``period`` seconds; ``peak()`` since the last ``reset()``."""

    def __init__(self, root: psutil.Process, period: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.period, self._peak, self._stop = root, period, 0.0, threading.Event()

    def run(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, tree_rss_mb(self.root))
            time.sleep(self.period)

    def reset(self) -> None:
        self._peak = tree_rss_mb(self.root)

    def peak(self) -> float:
        return self._peak

    def stop(self) -> None:
        self._stop.set()


async def one_viewer(browser, url: str) -> dict:
    """Open the page, click ✨ Try a sample, wait for the result, close: timings or the error."""
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    start = time.perf_counter()
    try:
        await page.goto(url, timeout=TIMEOUT_MS, wait_until="commit")
        answered = time.perf_counter()
        await page.wait_for_load_state("load", timeout=TIMEOUT_MS)
        loaded = time.perf_counter()
        await page.wait_for_selector(".emolib-chooser", state="visible", timeout=TIMEOUT_MS)
        shown = time.perf_counter()
        await page.click("button.emolib-sample")
        await page.wait_for_selector(".emolib-faces-count", state="visible", timeout=TIMEOUT_MS)
        done = time.perf_counter()
        return {"first_result": done - start, "click_to_result": done - shown, "answered": answered - start,
                "loaded": loaded - start, "shown": shown - start, "error": None}
    except Exception as error:  # noqa: BLE001 - counted and reported
        return {"error": f"{type(error).__name__}: {str(error)[:200]}"}
    finally:
        await context.close()


#: The kernel websocket protocol of JupyterLab's and Voilà's pages (binary frames), as they speak it.
WS_PROTOCOL = "v1.kernel.websocket.jupyter.org"


def _jupyter_frame(channel: str, msg_type: str, content: dict, session: str, metadata=None) -> bytes:
    """A kernel message as a frame of ``WS_PROTOCOL``: offsets, channel, header, parent, metadata, content."""
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session, "username": "bench",
              "date": datetime.now(UTC).isoformat(), "version": "5.4"}
    parts = [channel.encode()] + [json.dumps(part).encode() for part in (header, {}, metadata or {}, content)]
    offsets = [8 * (len(parts) + 2)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return b"".join([len(offsets).to_bytes(8, "little"), *(o.to_bytes(8, "little") for o in offsets), *parts])


def _jupyter_message(frame: bytes) -> tuple[str, dict]:
    """A ``WS_PROTOCOL`` frame's message type and content (widget buffers, after them, are skipped)."""
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1):8 * (i + 2)], "little") for i in range(count)]
    header, _, _, content = (json.loads(frame[a:b]) for a, b in zip(offsets[1:5], offsets[2:6]))
    return header["msg_type"], content


async def page_assets(browser, url: str) -> list[str]:
    """The same-server files (scripts, styles, extensions' chunks, fonts) a Chromium page of ``url`` gets
    (those the server answered; a few it answers 404 are left out)."""
    seen: list[str] = []
    context = await browser.new_context()
    page = await context.new_page()
    page.on("response", lambda response: seen.append(response.url)
            if response.url.startswith(url) and response.url != url and response.ok
            and response.request.method == "GET" and response.request.resource_type != "websocket" else None)
    await page.goto(url, timeout=TIMEOUT_MS)
    await page.wait_for_selector(".emolib-chooser", state="visible", timeout=TIMEOUT_MS)
    kernel = _kernel_id(await page.content())
    await context.close()
    # a page also asks about its own kernel: the viewer asks about its own instead
    return [asset.replace(kernel, KERNEL) for asset in dict.fromkeys(seen)]


#: Connections a browser opens to one server at once (Chromium's HTTP/1.1 limit).
BROWSER_CONNECTIONS = 6
#: Stands for the viewer's own kernel id in :func:`page_assets`' URLs.
KERNEL = "{kernel}"


def _kernel_id(page: str) -> str:
    return re.search(r'"kernelId": "([0-9a-f-]+)"', page).group(1)


async def curl(*urls: str) -> bytes:
    """GET ``urls`` as a browser does (kept-alive connections, ``BROWSER_CONNECTIONS`` at once) with curl,
    whose CPU time, unlike a Python client's, hardly takes from the server's on a shared machine.
    Returns the body of a lone URL; raises RuntimeError if any answer is not a success."""
    outputs = ["-o", "-"] if len(urls) == 1 else ["-o", os.devnull]
    command = ["curl", "--silent", "--show-error", "--fail", "--max-time", str(TIMEOUT_MS // 1000),
               "--parallel", "--parallel-max", str(BROWSER_CONNECTIONS)]
    for url in urls:
        command += [*outputs, url]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    body, error = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"curl: {error.decode(errors='replace')[:200]}")
    return body


async def ws_viewer(url: str, assets: list[str]) -> dict:
    """A viewer without a browser: what a page asks of the server, over HTTP and the kernel websocket.

    It gets the page and the files a browser's page gets (``assets``, from :func:`page_assets`), connects
    to the page's kernel, asks for the widgets' states (as the widget manager does), clicks ✨ Try a
    sample (the button's ``click`` message) and waits until a widget says "Faces detected"; then drops
    the connection (a tab that was closed). No JavaScript runs: the time is the server's part alone.
    """
    from websockets.asyncio.client import connect

    start = time.perf_counter()
    try:
        page = (await curl(url)).decode()
        answered = time.perf_counter()
        kernel = _kernel_id(page)
        await curl(*(asset.replace(KERNEL, kernel) for asset in assets))
        loaded = time.perf_counter()
        session = uuid.uuid4().hex
        ws_url = urllib.parse.urljoin(url.replace("http", "ws", 1),
                                      f"/api/kernels/{kernel}/channels?session_id={session}")
        async with connect(ws_url, subprotocols=[WS_PROTOCOL], max_size=None,
                           open_timeout=TIMEOUT_MS / 1000) as kernel_socket:
            async def receive() -> tuple[str, dict]:
                return _jupyter_message(await asyncio.wait_for(kernel_socket.recv(), TIMEOUT_MS / 1000))

            control = uuid.uuid4().hex
            await kernel_socket.send(_jupyter_frame("shell", "comm_open", {
                "comm_id": control, "target_name": "jupyter.widget.control", "data": {}}, session,
                {"version": "1.0.0"}))
            await kernel_socket.send(_jupyter_frame("shell", "comm_msg", {
                "comm_id": control, "data": {"method": "request_states"}}, session))
            sample = None
            while sample is None:
                _, content = await receive()
                states = content.get("data", {}).get("states")
                if content.get("comm_id") == control and states:
                    sample = next(model for model, entry in states.items()
                                  if "emolib-sample" in entry["state"].get("_dom_classes", ()))
            shown = time.perf_counter()
            await kernel_socket.send(_jupyter_frame("shell", "comm_msg", {
                "comm_id": sample, "data": {"method": "custom", "content": {"event": "click"}}}, session))
            while True:
                kind, content = await receive()
                if kind in ("comm_open", "comm_msg") and "Faces detected" in json.dumps(content.get("data")):
                    break
        done = time.perf_counter()
        return {"first_result": done - start, "click_to_result": done - shown, "answered": answered - start,
                "loaded": loaded - start, "shown": shown - start, "error": None}
    except Exception as error:  # noqa: BLE001 - counted and reported
        return {"error": f"{type(error).__name__}: {str(error)[:200]}"}


def _stats(values: list[float]) -> str:
    if not values:
        return "–"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.1f} / {p95:.1f}"


def viewers_cpu_s(server: psutil.Process) -> float:
    """CPU seconds of this process and its children but the server: the browser, or the websocket
    client and its curl processes (those already exited included)."""
    me, exited = psutil.Process(), resource.getrusage(resource.RUSAGE_CHILDREN)
    return tree_cpu_s(me, skip=server) + _own(me) + exited.ru_utime + exited.ru_stime


def _own(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _preheated(log_path: str) -> int:
    """How many pages Voilà gave a preheated kernel so far (its log's "Using pre-heated kernel" lines)."""
    return Path(log_path).read_text(errors="replace").count("Using pre-heated kernel")


def _pool_full(log_path: str) -> bool:
    """Whether Voilà's preheated pool (if any) was filled since a page last took a kernel from it."""
    text = Path(log_path).read_text(errors="replace")
    return text.rfind("is filled with") > text.rfind("Using pre-heated kernel")


async def run_design(design: str, sequential: int, concurrent: int, settle: float, cull_wait: float,
                     model: str | None, repo: Path = REPO, label: str | None = None,
                     extra: tuple[str, ...] = (), client: str = "chromium") -> list[dict]:
    from playwright.async_api import async_playwright

    port = free_port()
    log = tempfile.NamedTemporaryFile("w", prefix=f"dashboard-{design}-", suffix=".log", delete=False)  # noqa: SIM115
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(repo)}
    if model:
        env["EMOLIB_MODEL"] = model
    server = subprocess.Popen([sys.executable, "-m", "emolib", "dashboard", f"--port={port}",
                               *DESIGNS[design], *extra], cwd=repo, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    rows = []
    try:
        deadline = time.monotonic() + 600
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start; see {log.name}")
            try:
                with urllib.request.urlopen(url, timeout=120):
                    break
            except OSError:
                time.sleep(1)
        root = psutil.Process(server.pid)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                       args=CHROMIUM_ARGS)
            if client == "websocket":
                assets = await page_assets(browser, url)
                print(f"a page gets {len(assets)} files besides itself", file=sys.stderr, flush=True)
                viewer = functools.partial(ws_viewer, url, assets)
            else:
                viewer = functools.partial(one_viewer, browser, url)
            pooled = "--pool-size=0" not in DESIGNS[design]
            while pooled and not _pool_full(log.name) and time.monotonic() < deadline:
                time.sleep(1)
            time.sleep(settle)  # the preheated kernels run the notebook, the API settles
            sampler = Sampler(root)
            sampler.start()
            for phase, count in (("in sequence", sequential), ("at once", concurrent)):
                if not count:
                    continue
                baseline, api_baseline = tree_rss_mb(root), api_rss_mb(root)
                kernels_before = kernel_count(root)
                preheated_before = _preheated(log.name)
                cpu_before = (tree_cpu_s(root) + _own(root), viewers_cpu_s(root))
                phase_start = time.perf_counter()
                sampler.reset()
                if phase == "in sequence":
                    results = [await viewer() for _ in range(count)]
                else:
                    results = await asyncio.gather(*(viewer() for _ in range(count)))
                peak = sampler.peak()
                wall = time.perf_counter() - phase_start
                server_cpu = tree_cpu_s(root) + _own(root) - cpu_before[0]
                viewers_cpu = viewers_cpu_s(root) - cpu_before[1]
                closed, api_closed = tree_rss_mb(root), api_rss_mb(root)
                await asyncio.sleep(cull_wait)
                culled = tree_rss_mb(root)
                ok = [r for r in results if not r["error"]]
                rows.append({
                    "design": label or design, "phase": f"{count} {phase}", "baseline": baseline,
                    "peak": peak,
                    "extra": peak - baseline,
                    "per_viewer": f"{(peak - baseline) / count:.0f}" if phase == "at once" else "–",
                    "closed": closed, "culled": culled, "api": f"{_mb(api_baseline)} → {_mb(api_closed)}",
                    "kernels": f"{kernels_before} → {kernel_count(root)}",
                    "first": _stats([r["first_result"] for r in ok]),
                    "click": _stats([r["click_to_result"] for r in ok]),
                    "answered": _stats([r["answered"] for r in ok]),
                    "loaded": _stats([r["loaded"] for r in ok]),
                    "shown": _stats([r["shown"] for r in ok]),
                    "cpu": f"{server_cpu:.0f} / {viewers_cpu:.0f} / {wall:.0f}",
                    "preheated": f"{_preheated(log.name) - preheated_before} / {count}",
                    "errors": len(results) - len(ok),
                    "first_error": next((r["error"] for r in results if r["error"]), ""),
                })
                print(rows[-1], file=sys.stderr, flush=True)
            await browser.close()
        sampler.stop()
    finally:
        stop_process(server, timeout=60)
        log.close()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", nargs="+", choices=list(DESIGNS), default=["after", "before"])
    parser.add_argument("--sequential", type=int, default=5, help="viewers one after another")
    parser.add_argument("--concurrent", type=int, default=10, help="viewers at once")
    parser.add_argument("--settle", type=float, default=20, help="seconds after start-up before measuring")
    parser.add_argument("--cull-wait", type=float, default=30,
                        help="seconds to wait after the viewers closed (after's culler: 10 s + 2 s checks)")
    parser.add_argument("--model", help="model to serve (default: the shipped default)")
    parser.add_argument("--repo", type=Path, nargs="+", default=[REPO],
                        help="checkouts whose `emolib dashboard` is measured, in turn (default: this one), "
                             "e.g. an older commit's `git archive` for a before/after")
    parser.add_argument("--dashboard-args", default="",
                        help='more `emolib dashboard` options, e.g. "--pool-refill-delay=60" (this checkout)')
    parser.add_argument("--client", nargs="+", choices=("chromium", "websocket"), default=["chromium"],
                        help="viewers as Chromium pages, or as websocket clients that get what a page gets "
                             "and drive the widgets without running JavaScript (the server's part alone)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the designs × checkouts this often")
    args = parser.parse_args(argv)
    rows = []
    for _ in range(args.rounds):
        for design, repo, client in itertools.product(args.design, args.repo, args.client):
            mine = repo.resolve() == REPO
            label = f"{design} {args.dashboard_args}".strip() if mine else f"{design} ({repo.name})"
            label += f", {client}" if len(args.client) > 1 or client != "chromium" else ""
            rows += asyncio.run(run_design(design, args.sequential, args.concurrent, args.settle,
                                           args.cull_wait, args.model, repo.resolve(), label,
                                           tuple(args.dashboard_args.split()) if mine else (), client))
    print("| design | viewers | tree RSS at start (MB) | peak (MB) | peak − start (MB) | "
          "per viewer at once (MB) | right after close (MB) | after cull wait (MB) | kernels start → end | "
          "shared API RSS start → after close (MB) | first result s, median / p95 | "
          "click → result s, median / p95 | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['design']} | {r['phase']} | {r['baseline']:.0f} | {r['peak']:.0f} | "
              f"{r['extra']:.0f} | {r['per_viewer']} | "
              f"{r['closed']:.0f} | {r['culled']:.0f} | {r['kernels']} | {r['api']} | {r['first']} | "
              f"{r['click']} | "
              f"{r['errors']}{' (' + r['first_error'] + ')' if r['errors'] else ''} |")
    print()
    print("| design | viewers | preheated kernels used | page answered (s) | page loaded (s) | "
          "dashboard visible (s) | click → result (s) | first result (s) | "
          "CPU s: server tree / viewers (browser or client) / wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['design']} | {r['phase']} | {r['preheated']} | {r['answered']} | {r['loaded']} | "
              f"{r['shown']} | {r['click']} | {r['first']} | {r['cpu']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
