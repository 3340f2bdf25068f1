"""Many live devices, one `ppg-stream serve`: how many can one process carry on this machine?

    python benchmarks/bench_fleet.py                         # K = 100, 500, 1000, 2000, 5000
    python benchmarks/bench_fleet.py --devices 1000,5000,8000 --duration 40 --raw-qos 0

For each K: the service runs in its own process (as a user runs it); a load generator in its own
process publishes K devices' raw chunks at real-time rate over a real Mosquitto that this script starts with
the settings docs/broker.md recommends for a service (`set_tcp_nodelay true`, `max_queued_messages 100000`)
(synthetic recordings with known HR, staggered so devices do not all send at once); a subscriber in
this process checks that every expected window of every device arrives. Printed per K: the
service's CPU (share of one core) and peak RSS, windows/s, end-to-end latency p50/p99 (the raw chunk
that completed a window published → its HR message received), late, dropped and lost windows.
The last line names the largest K held with no loss and p99 within the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from tables import table  # noqa: E402

HEADER = struct.Struct("<BBBBIIIdd")  # the raw-chunk header (docs/messages.md, "Raw chunks"), packed directly for speed
POOL = 16  # distinct synthetic recordings the devices cycle through


# ---- load generator (its own process) ----------------------------------------------------------
def loadgen(prefix: str, devices: int, duration_s: float, chunk_s: float, qos: int, t0: float, port: int) -> None:
    """K gateways' worth of raw chunks through the project's own MQTT publisher (what `--publish-raw`
    uses; QoS 1): a Python load generator must not be the bottleneck of the measurement."""
    import asyncio

    from ppg_stream.replay.synthetic import synthesize
    from ppg_stream.stream.mqtt.publisher import MqttPublisher
    from ppg_stream.stream.mqtt.settings import BrokerSettings

    n_chunks = int(duration_s / chunk_s)
    pool = []
    for p in range(POOL):
        syn = synthesize(duration_s + 4 * chunk_s, seed=1000 + p)
        ppg = syn.ppg.astype("<f4")
        acc = syn.acc_g.astype("<f4")
        m, a = int(chunk_s * syn.fs_ppg), int(chunk_s * syn.fs_acc)
        pool.append([(ppg[r * m : (r + 1) * m].tobytes(), acc[r * a : (r + 1) * a].tobytes(), m, a) for r in range(n_chunks)])
    topics = [f"{prefix}/dev{i:05d}/raw" for i in range(devices)]
    stream_ids = [(i * 2654435761) & 0xFFFFFFFF for i in range(devices)]
    offsets = [chunk_s * i / devices for i in range(devices)]

    async def run() -> None:
        pub = MqttPublisher(BrokerSettings("127.0.0.1", port), prefix, f"{prefix}/_loadgen/status", outbox_size=10_000_000, flush_timeout_s=30)
        await pub.start()
        for r in range(n_chunks):
            t_start = r * chunk_s
            for i in range(devices):
                delay = t0 + offsets[i] + (r + 1) * chunk_s - time.time()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                ppg, acc, m, a = pool[i % POOL][r]
                pub.publish_payload(topics[i], HEADER.pack(1, 1, 1, 3, stream_ids[i], 2 * r, m, 64.0, t_start) + ppg)
                pub.publish_payload(topics[i], HEADER.pack(1, 2, 3, 3, stream_ids[i], 2 * r + 1, a, 32.0, t_start) + acc)
        report = await pub.close()
        if report.lost:
            print(f"loadgen: {report.lost} raw chunks not delivered", file=sys.stderr)

    asyncio.run(run())


# ---- the subscriber that checks every window ----------------------------------------------------
class Checker:
    def __init__(self, prefix: str, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.received: dict[tuple[str, int], float] = {}
        self.late = 0
        self.duplicates = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"checker-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/+/hr", qos=1)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        now = time.time()
        m = json.loads(message.payload)
        key = (m["device"], m["window"])
        with self.lock:
            if key in self.received:
                self.duplicates += 1
                return
            self.received[key] = now
            self.late += bool(m["late"])

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Broker:
    """A Mosquitto of this benchmark's own, configured as docs/broker.md recommends for `serve`."""

    def __init__(self) -> None:
        import socket
        import tempfile

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_step(devices: int, duration_s: float, chunk_s: float, qos: int, budget_ms: float, extra: list[str], broker) -> list:
    prefix = f"fleet-{uuid.uuid4().hex[:6]}"
    service = subprocess.Popen(
        [sys.executable, "-m", "ppg_stream.stream.cli", "serve", "--topic-prefix", prefix, "--log-json", "--raw-qos", str(qos), "--broker", f"mqtt://127.0.0.1:{broker.port}",
         "--idle-timeout", "600", "--max-devices", str(devices + 10), "--stats-interval", "5", "--budget-ms", str(budget_ms), *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines: list[dict] = []

    def read() -> None:
        for line in service.stderr:
            if line.startswith("{"):
                lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not any(e.get("event") == "subscribed" for e in lines):
        if service.poll() is not None:
            raise RuntimeError("serve exited before subscribing")
        time.sleep(0.05)
    checker = Checker(prefix, broker.port)
    time.sleep(0.5)
    t0 = time.time() + 3.0  # the load generator builds its recordings meanwhile
    gen = subprocess.Popen([sys.executable, __file__, "--loadgen", prefix, str(devices), str(duration_s), str(chunk_s), str(qos), repr(t0), str(broker.port)], cwd=ROOT)
    warm = 8.0 + chunk_s  # first windows complete after 8 s of stream: measure CPU from then on
    time.sleep(max(0.0, t0 + warm - time.time()))
    others = {"broker": broker.proc.pid, "loadgen": gen.pid, "checker": os.getpid()}
    cpu0, wall0 = proc_cpu_s(service.pid), time.time()
    others0 = {k: proc_cpu_s(p) for k, p in others.items() if p}
    gen.wait()
    others1 = {k: proc_cpu_s(p) for k, p in others.items() if p and k != "loadgen"}
    cpu1, wall1 = proc_cpu_s(service.pid), time.time()
    time.sleep(2.0)  # the last windows' messages
    rss = proc_rss_mib(service.pid)
    service.send_signal(signal.SIGINT)
    service.wait(timeout=120)
    reader.join(timeout=10)
    checker.stop()
    summary = next((e for e in lines if e.get("event") in ("serve interrupted", "serve finished")), {})
    if os.environ.get("BENCH_VERBOSE"):
        print("   other processes' CPU (cores):", {k: round((others1[k] - others0[k]) / (wall1 - wall0), 3) for k in others1})
        for e in lines:
            if e.get("event") == "stats":
                print("   service:", {k: e[k] for k in ("devices", "chunks_per_s", "windows_per_s", "latency_p50_ms", "latency_p99_ms", "dropped_chunks")})
    n_windows = int((int(duration_s / chunk_s) * chunk_s - 8.0) / 2.0) + 1
    expected = {(f"dev{i:05d}", k) for i in range(devices) for k in range(n_windows)}
    got = set(checker.received)
    lost = len(expected - got)
    offsets = {f"dev{i:05d}": chunk_s * i / devices for i in range(devices)}
    latencies = []
    for (device, k), seen in checker.received.items():
        t_end = 2.0 * k + 8.0
        published = t0 + offsets[device] + np.ceil(t_end / chunk_s - 1e-9) * chunk_s
        latencies.append((seen - published) * 1000.0)
    lat = np.array(latencies) if latencies else np.zeros(1)
    dropped = summary.get("dropped_stale", 0) + summary.get("dropped_chunks", 0)
    return [devices, round((cpu1 - cpu0) / (wall1 - wall0), 3), round(rss), round(len(got) / max(1e-9, duration_s - warm)),
            f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 99):.1f}", checker.late, dropped, lost, checker.duplicates]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="100,500,1000,2000,5000")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of stream per step")
    ap.add_argument("--chunk-s", type=float, default=2.0, help="seconds of signal per raw chunk")
    ap.add_argument("--raw-qos", type=int, default=1)
    ap.add_argument("--budget-ms", type=float, default=50.0)
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for serve (repeatable)")
    ap.add_argument("--loadgen", nargs=7, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loadgen:
        prefix, devices, duration, chunk_s, qos, t0, port = args.loadgen
        loadgen(prefix, int(devices), float(duration), float(chunk_s), int(qos), float(t0), int(port))
        return
    rows = []
    broker = Broker()
    try:
        for k in [int(x) for x in args.devices.split(",")]:
            rows.append(run_step(k, args.duration, args.chunk_s, args.raw_qos, args.budget_ms, args.serve_arg, broker))
            print(rows[-1], flush=True)
    finally:
        broker.stop()
    e2e_budget = args.budget_ms + 1000.0 * 0  # p99 end to end against the per-window budget
    table(f"ppg-stream serve, live devices at real-time rate ({args.chunk_s:g} s chunks, raw QoS {args.raw_qos}, {args.duration:g} s each, Mosquitto on this machine)",
          ["devices", "service CPU (cores)", "peak RSS MiB", "windows/s", "e2e latency p50 / p99 ms", "late", "dropped", "lost", "duplicates"], rows)
    held = [r[0] for r in rows if r[7] == 0 and float(r[4].split("/")[1]) <= e2e_budget]
    print(f"\nlargest K with no window lost and p99 end-to-end ≤ {e2e_budget:g} ms: {max(held) if held else 'none'}")


if __name__ == "__main__":
    main()
