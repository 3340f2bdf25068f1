"""Dashboard under a fleet's load: is the page smooth, and what does the server cost?

    python benchmarks/bench_dashboard.py                      # 500 devices, one message each every 2 s
    python benchmarks/bench_dashboard.py --devices 100 --seconds 20
    python benchmarks/bench_dashboard.py --screenshot docs/dashboard.png   # docs/dashboard.md's picture

Starts `ppg-stream dashboard` against the MQTT broker on 127.0.0.1:1883 (a unique topic prefix),
fills every device's chart with `--history` windows, then publishes live HR messages (QoS 1, spread
evenly over each 2 s hop) while headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
shows the page. Three phases, side by side: the page idle (no messages), live with the cards in
device order, live sorted by heart rate (cards re-ordered every second). Per phase: frame intervals
(requestAnimationFrame), long tasks (> 50 ms main-thread tasks, PerformanceObserver), the page's JS
heap, and the dashboard server's CPU (share of one core, from /proc) and resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aiomqtt

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOP_S = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET = logging.getLogger("bench.aiomqtt")  # aiomqtt warns about many publishes in flight: that is the point
QUIET.setLevel(logging.ERROR)

PROBE = """
window.__bench = {frames: [], longtasks: []};
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__bench.longtasks.push(e.duration); })
  .observe({type: "longtask", buffered: true});
(function tick(t) { window.__bench.frames.push(t); requestAnimationFrame(tick); })(performance.now());
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Fleet:
    """Plausible wearers: a heart rate that wanders, sometimes exercises, a confidence that dips with it."""

    def __init__(self, n: int, seed: int = 7, names: list[str] | None = None) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.names = names or [f"wrist-{i:03d}" for i in range(n)]
        self.rest = {d: rng.uniform(55, 80) for d in self.names}
        self.hr = dict(self.rest)
        self.phase = {d: rng.uniform(0, 2 * math.pi) for d in self.names}
        self.window = {d: 0 for d in self.names}
        self.model = {d: "ppg-student@1.1" for d in self.names}
        self.own_hr: set[str] = set()  # wearables passing their own HR through (source: device)

    def message(self, device: str) -> bytes:
        k = self.window[device]
        self.window[device] += 1
        effort = max(0.0, math.sin(self.phase[device] + k / 40)) * 55  # a workout comes and goes
        target = self.rest[device] + effort
        self.hr[device] += 0.15 * (target - self.hr[device]) + self.rng.gauss(0, 1.2)
        confidence = min(0.99, max(0.05, 0.93 - effort / 160 + self.rng.gauss(0, 0.06)))
        if device in self.own_hr:
            return json.dumps({
                "device": device, "source": "device", "seq": k, "t_end": HOP_S * k + 8, "ts": iso_now(),
                "bpm": round(self.hr[device]), "rr_ms": [round(60000 / self.hr[device], 1)], "contact": True,
                "energy_kj": None, "model": "device",
            }).encode()
        return json.dumps({
            "device": device, "window": k, "t_end": HOP_S * k + 8, "ts": iso_now(), "bpm": round(self.hr[device], 1),
            "confidence": round(confidence, 3), "latency_ms": round(self.rng.uniform(0.4, 1.2), 3),
            "late": self.rng.random() < 0.003, "model": self.model[device],
        }).encode()


async def prefill(client: aiomqtt.Client, prefix: str, fleet: Fleet, windows: int) -> None:
    for device in fleet.names:
        await client.publish(f"{prefix}/{device}/status", b"online", qos=1, retain=True)
    for _ in range(windows):
        await asyncio.gather(*(client.publish(f"{prefix}/{d}/hr", fleet.message(d), qos=1) for d in fleet.names))


async def live(client: aiomqtt.Client, prefix: str, fleet: Fleet, stop: asyncio.Event) -> int:
    """Every device once per hop, spread evenly: len(fleet) / 2 messages a second."""
    sent = 0
    slot = HOP_S / len(fleet.names)
    start = time.monotonic()
    while not stop.is_set():
        for i, device in enumerate(fleet.names):
            due = start + i * slot
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set():
                return sent
            await client.publish(f"{prefix}/{device}/hr", fleet.message(device), qos=1)
            sent += 1
        start += HOP_S
    return sent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def measure(page, pid: int, seconds: float) -> dict:
    await page.evaluate("() => { window.__bench.frames = []; window.__bench.longtasks = []; }")
    heap0 = await page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    data = await page.evaluate("() => window.__bench")
    heap1 = await page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
    frames = data["frames"]
    gaps = [b - a for a, b in zip(frames, frames[1:])]
    return {
        "fps": len(gaps) / (t1 - t0),
        "p50": quantile(gaps, 0.5), "p95": quantile(gaps, 0.95), "p99": quantile(gaps, 0.99), "max": max(gaps, default=float("nan")),
        "over50": sum(g > 50 for g in gaps),
        "longtasks": len(data["longtasks"]), "longtask_ms": sum(data["longtasks"]),
        "heap0": heap0 / 2**20, "heap1": heap1 / 2**20,
        "server_cpu": 100 * (cpu1 - cpu0) / (t1 - t0), "server_rss": rss_mib(pid),
    }


async def run(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    prefix = f"bench-dash-{uuid.uuid4().hex[:8]}"
    port = free_port()
    names = None
    if args.screenshot:
        names = ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "ble-a09e1a123456", "ble-c0ffee123456", "wrist-lab-2"]
        args.devices = len(names)
    fleet = Fleet(args.devices, names=names)
    server = subprocess.Popen([sys.executable, "-m", "ppg_stream.stream.cli", "dashboard", "--port", str(port), "--topic-prefix", prefix],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(url + "api/devices", timeout=1) as r:
                    if json.load(r)["meta"]["broker_state"] == "connected":
                        break
            except OSError:
                pass
            time.sleep(0.05)
        async with aiomqtt.Client("127.0.0.1", 1883, max_inflight_messages=1000, logger=QUIET) as client:
            t = time.monotonic()
            if args.screenshot:
                fleet.model["S9"] = "spectral@1.0"
                fleet.own_hr.add("ble-c0ffee123456")
            await prefill(client, prefix, fleet, args.history)
            print(f"prefilled {args.history} windows x {args.devices} devices in {time.monotonic() - t:.1f} s", file=sys.stderr)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
                page = await browser.new_page(viewport={"width": 1600, "height": 1000} if not args.screenshot else {"width": 1280, "height": 820})
                await page.add_init_script(PROBE)
                t = time.monotonic()
                await page.goto(url)
                await page.wait_for_function(f"() => document.getElementById('summary').textContent.startsWith('{args.devices} devices')", timeout=60_000)
                load_s = time.monotonic() - t
                if args.screenshot:
                    await shoot(page, client, prefix, fleet, Path(args.screenshot))
                    await browser.close()
                    return
                results = {"idle (no messages)": await measure(page, server.pid, args.seconds)}
                stop = asyncio.Event()
                sender = asyncio.create_task(live(client, prefix, fleet, stop))
                await asyncio.sleep(2 * HOP_S)  # reach the steady rate
                results["live, cards in device order"] = await measure(page, server.pid, args.seconds)
                await page.select_option("#sort", "hr-desc")
                results["live, sorted by heart rate"] = await measure(page, server.pid, args.seconds)
                stop.set()
                sent = await sender
                snapshot_bytes = len(urllib.request.urlopen(url + "api/devices").read())
                await browser.close()
        report(args, results, load_s, sent, snapshot_bytes)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            for device in fleet.names:
                await client.publish(f"{prefix}/{device}/status", b"", qos=1, retain=True)


async def shoot(page, client, prefix: str, fleet: Fleet, path: Path) -> None:
    """The dashboard page's picture: a few devices live, one gone offline, one that lost windows on the way."""
    await client.publish(f"{prefix}/S6/status", b"offline", qos=1, retain=True)
    fleet.names.remove("S6")
    fleet.window["S4"] += 3  # three windows lost on the way
    stop = asyncio.Event()
    sender = asyncio.create_task(live(client, prefix, fleet, stop))
    await asyncio.sleep(3 * HOP_S)
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path))
    stop.set()
    await sender
    fleet.names.append("S6")
    print(f"wrote {path}", file=sys.stderr)


def report(args, results: dict, load_s: float, sent: int, snapshot_bytes: int) -> None:
    rate = args.devices / HOP_S
    print(f"\n{args.devices} devices, {rate:g} messages/s (QoS 1), {args.history} windows of history each; "
          f"page load to {args.devices} cards {load_s:.2f} s; snapshot {snapshot_bytes / 2**20:.1f} MiB; {sent} live messages\n")
    print("| phase | frames/s | frame p50 / p95 / p99 / max (ms) | frames > 50 ms | long tasks (total ms) | JS heap start → end (MiB) | server CPU (% of a core) | server RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['fps']:.1f} | {r['p50']:.1f} / {r['p95']:.1f} / {r['p99']:.1f} / {r['max']:.1f} | {r['over50']} | "
              f"{r['longtasks']} ({r['longtask_ms']:.0f}) | {r['heap0']:.1f} → {r['heap1']:.1f} | {r['server_cpu']:.1f} | {r['server_rss']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each measured phase")
    parser.add_argument("--history", type=int, default=150, help="windows published per device before measuring (150 = full charts)")
    parser.add_argument("--screenshot", metavar="PNG", help="instead of measuring, render 12 devices and save a screenshot")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"bench_dashboard: {CHROMIUM} not found (apt-get install chromium)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
