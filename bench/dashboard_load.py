"""The dashboard under a room's load: Chromium viewers open the page, ✨ Try a sample, and close it.

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
tree and the browser used. Markdown tables on stdout.

    python bench/dashboard_load.py --design after before --sequential 5 --concurrent 10
    python bench/dashboard_load.py --design after --repo . /tmp/old-checkout   # before/after two commits
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from emolib.dashboard import stop_process

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("EMOLIB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DESIGNS = {
    "after": ["--cull-disconnected=10", "--cull-interval=2"],
    "before": ["--in-process", "--pool-size=0", "--cull-idle=0"],
}
TIMEOUT_MS = 300_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss_mb(root: psutil.Process) -> float:
    """RSS of ``root`` and all its descendants, in MB."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


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


def _stats(values: list[float]) -> str:
    if not values:
        return "–"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.1f} / {p95:.1f}"


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
                     extra: tuple[str, ...] = ()) -> list[dict]:
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
        pooled = "--pool-size=0" not in DESIGNS[design]
        while pooled and not _pool_full(log.name) and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(settle)  # the preheated kernels run the notebook, the API settles
        sampler = Sampler(root)
        sampler.start()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                       args=CHROMIUM_ARGS)
            for phase, count in (("in sequence", sequential), ("at once", concurrent)):
                if not count:
                    continue
                baseline = tree_rss_mb(root)
                kernels_before = kernel_count(root)
                preheated_before = _preheated(log.name)
                me = psutil.Process()
                cpu_before = (tree_cpu_s(root) + _own(root), tree_cpu_s(me, skip=root))
                phase_start = time.perf_counter()
                sampler.reset()
                if phase == "in sequence":
                    results = [await one_viewer(browser, url) for _ in range(count)]
                else:
                    results = await asyncio.gather(*(one_viewer(browser, url) for _ in range(count)))
                peak = sampler.peak()
                wall = time.perf_counter() - phase_start
                server_cpu = tree_cpu_s(root) + _own(root) - cpu_before[0]
                browser_cpu = tree_cpu_s(me, skip=root) - cpu_before[1]
                closed = tree_rss_mb(root)
                await asyncio.sleep(cull_wait)
                culled = tree_rss_mb(root)
                ok = [r for r in results if not r["error"]]
                rows.append({
                    "design": label or design, "phase": f"{count} {phase}", "baseline": baseline,
                    "peak": peak,
                    "extra": peak - baseline,
                    "per_viewer": f"{(peak - baseline) / count:.0f}" if phase == "at once" else "–",
                    "closed": closed, "culled": culled,
                    "kernels": f"{kernels_before} → {kernel_count(root)}",
                    "first": _stats([r["first_result"] for r in ok]),
                    "click": _stats([r["click_to_result"] for r in ok]),
                    "answered": _stats([r["answered"] for r in ok]),
                    "loaded": _stats([r["loaded"] for r in ok]),
                    "shown": _stats([r["shown"] for r in ok]),
                    "cpu": f"{server_cpu:.0f} / {browser_cpu:.0f} / {wall:.0f}",
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
    parser.add_argument("--rounds", type=int, default=1, help="repeat the designs × checkouts this often")
    args = parser.parse_args(argv)
    rows = []
    for _ in range(args.rounds):
        for design in args.design:
            for repo in args.repo:
                mine = repo.resolve() == REPO
                label = f"{design} {args.dashboard_args}".strip() if mine else f"{design} ({repo.name})"
                rows += asyncio.run(run_design(design, args.sequential, args.concurrent, args.settle,
                                               args.cull_wait, args.model, repo.resolve(), label,
                                               tuple(args.dashboard_args.split()) if mine else ()))
    print("| design | viewers | tree RSS at start (MB) | peak (MB) | peak − start (MB) | "
          "per viewer at once (MB) | right after close (MB) | after cull wait (MB) | kernels start → end | "
          "first result s, median / p95 | click → result s, median / p95 | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['design']} | {r['phase']} | {r['baseline']:.0f} | {r['peak']:.0f} | "
              f"{r['extra']:.0f} | {r['per_viewer']} | "
              f"{r['closed']:.0f} | {r['culled']:.0f} | {r['kernels']} | {r['first']} | {r['click']} | "
              f"{r['errors']}{' (' + r['first_error'] + ')' if r['errors'] else ''} |")
    print()
    print("| design | viewers | preheated kernels used | page answered (s) | page loaded (s) | "
          "dashboard visible (s) | click → result (s) | first result (s) | "
          "CPU s: server tree / browser / wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['design']} | {r['phase']} | {r['preheated']} | {r['answered']} | {r['loaded']} | "
              f"{r['shown']} | {r['click']} | {r['first']} | {r['cpu']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
