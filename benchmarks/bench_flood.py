"""A flood of device ids against one `ppg-stream serve`: what it costs and what it leaves behind.

    python benchmarks/bench_flood.py                          # 100,000 ids, QoS 1, the installed ppg-stream
    python benchmarks/bench_flood.py --ids 20000 --python OTHER_VENV/bin/python   # another version beside it

Someone on the broker publishes one raw chunk for each of N fresh device ids (what a buggy or hostile
gateway can do), while one real device streams. Measured, for each interpreter given (run one after
the other on the same Mosquitto of this benchmark's own): the service's resident memory after
warm-up, at the flood's peak and once the ids have idled out; its log lines during the flood; the
statuses left retained on the broker; the service's own counts (devices, refused); and whether the
real device kept its windows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fleet import Broker  # noqa: E402
from ppg_stream.stream.core.raw_chunk import HEADER  # noqa: E402  (version 1: no send time)
from tables import table  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def flood(port: int, prefix: str, ids: int, real_s: float) -> None:
    """N one-chunk ids (QoS 1, through the project's own publisher) while one real device streams in 1 s chunks."""
    import numpy as np

    from ppg_stream.replay.synthetic import synthesize
    from ppg_stream.stream.mqtt.publisher import MqttPublisher
    from ppg_stream.stream.mqtt.settings import BrokerSettings

    pub = MqttPublisher(BrokerSettings("127.0.0.1", port), prefix, f"{prefix}/_flood/status", outbox_size=10_000_000, flush_timeout_s=120)
    await pub.start()
    junk = np.zeros(16, dtype="<f4").tobytes()
    syn = synthesize(real_s + 2, seed=7)
    ppg, acc = syn.ppg.astype("<f4"), syn.acc_g.astype("<f4")
    t0 = time.monotonic()
    sent = 0
    for second in range(int(real_s)):
        pub.publish_payload(f"{prefix}/real/raw", HEADER.pack(1, 1, 1, 3, 42, 2 * second, 64, 64.0, float(second)) + ppg[64 * second: 64 * (second + 1)].tobytes())
        pub.publish_payload(f"{prefix}/real/raw", HEADER.pack(1, 2, 3, 3, 42, 2 * second + 1, 32, 32.0, float(second)) + acc[32 * second: 32 * (second + 1)].tobytes())
        batch = ids * (second + 1) // int(real_s) - sent
        for i in range(sent, sent + batch):
            pub.publish_payload(f"{prefix}/ghost{i:07d}/raw", HEADER.pack(1, 1, 1, 1, i, 0, 16, 64.0, 0.0) + junk)
        sent += batch
        await asyncio.sleep(max(0.0, t0 + second + 1 - time.monotonic()))
    report = await pub.close()
    if report.lost:
        print(f"flood: {report.lost} chunks not delivered", file=sys.stderr)


async def retained_statuses(port: int, prefix: str) -> int:
    import aiomqtt

    found = 0
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"{prefix}/+/status", qos=1)
        try:
            async with asyncio.timeout(3.0):
                async for message in client.messages:
                    found += bool(message.retain and message.payload)
        except TimeoutError:
            pass
    return found


def run(python: str, broker: Broker, ids: int, idle_s: float) -> list:
    prefix = f"flood-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([python, "-m", "ppg_stream.stream.cli", "serve", "--topic-prefix", prefix, "--log-json", "--broker", f"mqtt://127.0.0.1:{broker.port}",
                             "--idle-timeout", str(idle_s), "--stats-interval", "3600"], cwd="/tmp", stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if '"subscribed"' in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(120):
        proc.kill()
        raise RuntimeError(f"serve did not start: {lines[-3:]}")
    time.sleep(2.0)
    base = rss_mib(proc.pid)
    lines_before = len(lines)
    peak = [base]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    asyncio.run(flood(broker.port, prefix, ids, real_s=60.0))
    flood_s = time.monotonic() - t0
    time.sleep(idle_s + 8.0)  # every ghost idles out, the trim follows
    done.set()
    after = rss_mib(proc.pid)
    flood_lines = len(lines) - lines_before
    retained = asyncio.run(retained_statuses(broker.port, prefix))
    proc.send_signal(2)
    proc.wait(60)
    reader.join(5)
    summary = next((json.loads(line) for line in reversed(lines) if '"serve interrupted"' in line), {})
    return [python, f"{ids:,}", f"{flood_s:.0f}", f"{base:.0f}", f"{peak[0]:.0f}", f"{after:.0f}", f"{flood_lines:,}", f"{retained:,}",
            f"{summary.get('devices', 0):,}", f"{summary.get('refused_devices', 0):,}", f"{summary.get('windows', '?')}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=100_000)
    parser.add_argument("--idle-timeout", type=float, default=10.0)
    parser.add_argument("--python", action="append", default=[], help="interpreter(s) whose ppg-stream to measure (default: this one)")
    args = parser.parse_args()
    broker = Broker()
    try:
        rows = [run(python, broker, args.ids, args.idle_timeout) for python in (args.python or [sys.executable])]
    finally:
        broker.stop()
    print(f"# load average {os.getloadavg()[0]:.1f} (2-core machine)")
    table(f"A flood of {args.ids:,} device ids (one QoS-1 raw chunk each, over 60 s) beside one real device",
          ["interpreter", "ids", "flood s", "RSS after warm-up MiB", "peak MiB", "after the ids idled out MiB", "log lines during the flood",
           "statuses retained", "devices served", "refused (--max-devices)", "windows published"], rows)


if __name__ == "__main__":
    main()
