"""Many live devices, one `ppg-stream serve`: how many can one process carry on this machine, at the
chunk sizes real gateways send?

    python benchmarks/bench_fleet.py                                   # 0.25, 1, 2 s chunks; K = 250 … 5000; 60 s per step
    python benchmarks/bench_fleet.py --chunk-s 1 --devices 1000,2000 --duration 60
    python benchmarks/bench_fleet.py --chunk-s 0.25,1,2 --devices 500,1000 --duration 20   # a shortened run: say so
    python benchmarks/bench_fleet.py --chunk-s 2 --recover 4000,1000 --high-s 60 --duration 60   # overload, then back to normal

For each chunk size and each K: the service runs in its own process, as a user runs it; a load
generator in its own process publishes K devices' raw chunks (payload version 2, stamped with the
time it sends each one) over `--connections` MQTT connections (gateways; at least 8), in real time,
devices staggered over the chunk period, through a Mosquitto this script starts with the settings
docs/serve.md recommends; a checker in this process subscribes to the HR topics and checks every
window of every device: that it arrives, once, in order, and with a heart rate within 5 bpm of the
generator's truth (clean synthetic signals: a miss is a pipeline fault, not the model's).

Printed per step: service, Mosquitto and checker CPU (share of one core, over the measured span), the
service's peak RSS, windows/s (windows received within the measured span ÷ its length), end-to-end
latency p50 / p99 (HR message received − the time the load generator was due to send the chunk that
completed the window: its own lateness is included, and printed), late (flagged by serve), windows
dropped by serve (stale), chunks dropped and missing, lost (never received), unaccounted (lost and not
counted by serve as dropped or skipped), duplicated, out of order, off by > 5 bpm, reconnects, and the
seconds the service took after the last chunk to work through what it had left (drain_s: it is stopped
once one of its stats lines saw no chunk come in). Then one line per chunk size: the largest K with no
window lost and end-to-end p99 ≤ --p99-ms (250).
The load average of the machine is printed with each step: other work on it shows in the latencies.

`--recover K_HIGH,K_NORMAL`: one run past capacity and back. K_HIGH devices send for --high-s seconds,
then only the first K_NORMAL go on for --duration seconds more (the others stop, as gateways that
went away). Printed per 5-second stats interval of the service: chunks taken, windows published (by
serve, and received by the checker), windows dropped as stale and chunks dropped from full queues
(both counted by serve), serve's end-to-end p99; then the seconds from the load's return to normal
until the start of the first interval with 0 drops that every later interval keeps at 0 (an upper
bound, at the stats interval's resolution), and whether that is within the goal's 30 s.
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

HEADER_V2 = struct.Struct("<BBBBIIIddd")  # the raw-chunk header, version 2 (docs/messages.md, "Raw chunks"), packed directly for speed
POOL = 16  # distinct synthetic recordings the devices cycle through
WINDOW_S, HOP_S = 8.0, 2.0


def recordings(duration_s: float):
    from ppg_stream.replay.synthetic import synthesize

    return [synthesize(duration_s + 4.0, seed=1000 + p, motion_share=0.0) for p in range(POOL)]


def n_windows(duration_s: float, chunk_s: float) -> int:
    sent_s = round(duration_s / chunk_s) * chunk_s
    return int((sent_s - WINDOW_S) // HOP_S) + 1


# ---- load generator (its own process) ----------------------------------------------------------
def loadgen(prefix: str, devices: int, duration_s: float, chunk_s: float, t0: float, port: int, connections: int,
            normal_devices: int, switch_s: float) -> None:
    """K devices' raw chunks through `connections` of the project's own MQTT publishers (what
    `--publish-raw` uses; QoS 1), each chunk stamped with the time it is handed to its publisher.
    Chunks that start at or after `switch_s` of stream time are sent by the first `normal_devices` only."""
    import asyncio

    from ppg_stream.stream.mqtt.publisher import MqttPublisher
    from ppg_stream.stream.mqtt.settings import BrokerSettings

    n_chunks = round(duration_s / chunk_s)
    m, a = round(chunk_s * 64), round(chunk_s * 32)
    pool = []
    for syn in recordings(duration_s):
        ppg, acc = syn.ppg.astype("<f4"), syn.acc_g.astype("<f4")
        pool.append([(ppg[r * m : (r + 1) * m].tobytes(), acc[r * a : (r + 1) * a].tobytes()) for r in range(n_chunks)])
    topics = [f"{prefix}/dev{i:05d}/raw" for i in range(devices)]
    stream_ids = [(i * 2654435761 + 1) & 0xFFFFFFFF for i in range(devices)]
    offsets = [chunk_s * i / devices for i in range(devices)]
    lateness: list[float] = []

    async def run() -> None:
        pubs = [MqttPublisher(BrokerSettings("127.0.0.1", port), prefix, f"{prefix}/_gw{c}/status", outbox_size=10_000_000,
                              flush_timeout_s=60, client_id=f"{prefix}-gw{c}") for c in range(connections)]
        for pub in pubs:
            await pub.start()
        for r in range(n_chunks):
            t_start = r * chunk_s
            for i in range(devices if t_start < switch_s - 1e-9 else normal_devices):
                due = t0 + offsets[i] + (r + 1) * chunk_s
                delay = due - time.time()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                now = time.time()
                if i % 97 == 0:
                    lateness.append(now - due)
                ppg, acc = pool[i % POOL][r]
                pub = pubs[i % connections]
                pub.publish_payload(topics[i], HEADER_V2.pack(2, 1, 1, 3, stream_ids[i], 2 * r, m, 64.0, t_start, now) + ppg)
                pub.publish_payload(topics[i], HEADER_V2.pack(2, 2, 3, 3, stream_ids[i], 2 * r + 1, a, 32.0, t_start, now) + acc)
        lost = 0
        for pub in pubs:
            lost += (await pub.close()).lost
        late = np.array(lateness) * 1000.0
        print(json.dumps({"loadgen_late_p50_ms": round(float(np.percentile(late, 50)), 1), "loadgen_late_p99_ms": round(float(np.percentile(late, 99)), 1),
                          "undelivered": lost}), flush=True)

    asyncio.run(run())


# ---- the subscriber that checks every window ----------------------------------------------------
class Checker:
    def __init__(self, prefix: str, port: int, devices: int, duration_s: float, chunk_s: float) -> None:
        import paho.mqtt.client as mqtt

        self.labels = [syn.labels_bpm for syn in recordings(duration_s)]
        self.chunk_s = chunk_s
        self.offsets = {f"dev{i:05d}": (i, chunk_s * i / devices) for i in range(devices)}
        self.received: dict[tuple[str, int], float] = {}
        self.last: dict[str, int] = {}
        self.late = self.duplicates = self.out_of_order = self.off = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"checker-{os.getpid()}-{uuid.uuid4().hex[:4]}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/+/hr", qos=1)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        now = time.time()
        m = json.loads(message.payload)
        device, k = m["device"], m["window"]
        with self.lock:
            if (device, k) in self.received:
                self.duplicates += 1
                return
            self.received[(device, k)] = now
            if k < self.last.get(device, -1):
                self.out_of_order += 1
            self.last[device] = max(k, self.last.get(device, -1))
            self.late += bool(m["late"])
            labels = self.labels[self.offsets[device][0] % POOL]
            if k < len(labels) and abs(m["bpm"] - labels[k]) > 5.0:
                self.off += 1

    def latencies_ms(self, t0: float) -> np.ndarray:
        """HR received − when the chunk that completed the window was due to be sent."""
        out = []
        for (device, k), seen in self.received.items():
            t_end = HOP_S * k + WINDOW_S
            due = t0 + self.offsets[device][1] + np.ceil(t_end / self.chunk_s - 1e-9) * self.chunk_s
            out.append((seen - due) * 1000.0)
        return np.array(out) if out else np.zeros(1)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Broker:
    """A Mosquitto of this benchmark's own, with the settings docs/serve.md recommends for a fleet."""

    def __init__(self) -> None:
        import socket
        import tempfile

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                        "max_queued_messages 200000\nmax_inflight_messages 1000\n")
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


def run_step(devices: int, duration_s: float, chunk_s: float, connections: int, budget_ms: float, extra: list[str], broker: Broker,
             verbose: bool = False, normal_devices: int | None = None, switch_s: float | None = None) -> dict:
    """One K (or, with `normal_devices` and `switch_s`, K devices until `switch_s` of stream time, then
    `normal_devices` of them): the row of the table; the recovery intervals too when switching."""
    switch_s = duration_s if switch_s is None else switch_s
    normal_devices = devices if normal_devices is None else normal_devices
    prefix = f"fleet-{uuid.uuid4().hex[:6]}"
    service = subprocess.Popen(
        [sys.executable, "-m", "ppg_stream.stream.cli", "serve", "--topic-prefix", prefix, "--log-json", "--broker", f"mqtt://127.0.0.1:{broker.port}",
         "--idle-timeout", "600", "--max-devices", str(devices + 10), "--stats-interval", "5", "--budget-ms", str(budget_ms), *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines: list[dict] = []

    def read() -> None:
        for line in service.stderr:
            if line.startswith("{"):
                entry = json.loads(line)
                entry["timestamp_s"] = time.time()  # when this script read it
                lines.append(entry)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not any(e.get("event") == "subscribed" for e in lines):
        if service.poll() is not None:
            raise RuntimeError("serve exited before subscribing")
        time.sleep(0.05)
    checker = Checker(prefix, broker.port, devices, duration_s, chunk_s)
    t0 = time.time() + 4.0  # the load generator builds its recordings meanwhile
    gen = subprocess.Popen([sys.executable, __file__, "--loadgen", prefix, str(devices), str(duration_s), str(chunk_s), repr(t0), str(broker.port), str(connections),
                            str(normal_devices), repr(switch_s)],
                           cwd=ROOT, stdout=subprocess.PIPE, text=True)
    # the first windows complete after 8 s of stream: measure from 10 s on, over whole hops (windows complete
    # every 2 s per device), so windows/s counts each device's windows exactly once per hop
    start = t0 + WINDOW_S + HOP_S
    end = t0 + round(duration_s / chunk_s) * chunk_s  # the last chunk is due then
    stop = start + HOP_S * ((end - start) // HOP_S)
    time.sleep(max(0.0, start - time.time()))
    cpu0 = {"serve": proc_cpu_s(service.pid), "broker": proc_cpu_s(broker.proc.pid), "checker": proc_cpu_s(os.getpid())}
    wall0 = time.time()
    load0 = os.getloadavg()[0]
    time.sleep(max(0.0, stop - time.time()))
    cpu1 = {"serve": proc_cpu_s(service.pid), "broker": proc_cpu_s(broker.proc.pid), "checker": proc_cpu_s(os.getpid())}
    wall1 = time.time()
    load1 = os.getloadavg()[0]
    gen_out, _ = gen.communicate(timeout=300)
    # the last windows' messages: a service that fell behind is given time to work through its backlog (until
    # a stats line says no chunk came in during its interval, at most 180 s), so what it never published is
    # what it dropped, counted
    done_at = time.time()
    deadline = done_at + 180.0
    while time.time() < deadline:
        time.sleep(0.5)
        if any(e.get("event") == "stats" and e.get("chunks_per_s") == 0 and e.get("timestamp_s", 0) >= done_at for e in lines):
            break
    drained_s = time.time() - done_at
    time.sleep(1.0)
    rss = proc_rss_mib(service.pid)
    service.send_signal(signal.SIGINT)
    service.wait(timeout=120)
    reader.join(timeout=10)
    checker.stop()
    summary = next((e for e in lines if e.get("event") in ("serve interrupted", "serve finished")), {})
    if verbose:
        for e in lines:
            if e.get("event") == "stats":
                print("   serve stats:", {k: e.get(k) for k in ("chunks_per_s", "windows_per_s", "latency_p50_ms", "latency_p99_ms", "late", "dropped_stale",
                                                            "dropped_chunks", "missing_chunks", "reconnects", "outbox")}, flush=True)
    gen_stats = json.loads(gen_out.strip().splitlines()[-1]) if gen_out.strip() else {}
    expected = {(f"dev{i:05d}", k) for i in range(devices) for k in range(n_windows(duration_s if i < normal_devices else switch_s, chunk_s))}
    got = set(checker.received)
    lost = len(expected - got)
    in_span = sum(1 for seen in checker.received.values() if start <= seen < stop)
    lat = checker.latencies_ms(t0)
    span = wall1 - wall0  # CPU over what was measured; windows/s over [start, stop), whole hops
    recovery = recovery_intervals(lines, checker, t0 + switch_s) if switch_s < duration_s else None
    return {"recovery": recovery} | {
        "chunk_s": chunk_s, "devices": devices, "serve_cpu": round((cpu1["serve"] - cpu0["serve"]) / span, 3),
        "broker_cpu": round((cpu1["broker"] - cpu0["broker"]) / span, 3), "checker_cpu": round((cpu1["checker"] - cpu0["checker"]) / span, 3), "rss_mib": round(rss), "windows_per_s": round(in_span / (stop - start), 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "late": checker.late, "dropped_stale": summary.get("dropped_stale", 0), "dropped_chunks": summary.get("dropped_chunks", 0),
        "missing_chunks": summary.get("missing_chunks", 0), "lost": lost,
        "unaccounted": lost - summary.get("dropped_stale", 0) - summary.get("skipped_gap", 0), "duplicates": checker.duplicates, "out_of_order": checker.out_of_order,
        "off_5bpm": checker.off, "reconnects": summary.get("reconnects", 0), "loadgen_late_p99_ms": gen_stats.get("loadgen_late_p99_ms"), "drain_s": round(drained_s),
        "load_avg": f"{load0:.1f}-{load1:.1f}",
    }


def recovery_intervals(lines: list[dict], checker: Checker, switch_at: float) -> dict:
    """Serve's stats intervals around the load's return to normal (`switch_at`, Unix time the first
    chunk of the normal load was due): per interval what came in, what went out, what was dropped."""
    stats = [e for e in lines if e.get("event") == "stats"]
    seen = sorted(checker.received.values())
    rows = []
    for before, after in zip(stats, stats[1:]):
        a, b = before["timestamp_s"], after["timestamp_s"]
        dt = b - a
        rows.append({
            "from_s": round(a - switch_at, 1), "to_s": round(b - switch_at, 1), "chunks": round(after["chunks_per_s"] * dt),
            "published": round(after["windows_per_s"] * dt), "received": int(np.searchsorted(seen, b) - np.searchsorted(seen, a)),
            "dropped_stale": after["dropped_stale"] - before["dropped_stale"], "dropped_chunks": after["dropped_chunks"] - before["dropped_chunks"],
            "p99_ms": after["latency_p99_ms"],
        })
    clean_from = None  # the first interval after the switch from which every interval has no drops
    for row in reversed(rows):
        if row["dropped_stale"] or row["dropped_chunks"]:
            break
        if row["to_s"] > 0:
            clean_from = row["from_s"]
    return {"intervals": rows, "back_to_0_drops_s": None if clean_from is None else max(0.0, clean_from)}


RECOVERY_COLUMNS = ["from_s", "to_s", "chunks", "published", "received", "dropped_stale", "dropped_chunks", "p99_ms"]


COLUMNS = ["chunk_s", "devices", "serve_cpu", "broker_cpu", "checker_cpu", "rss_mib", "windows_per_s", "p50_ms", "p99_ms", "late", "dropped_stale", "dropped_chunks",
           "missing_chunks", "lost", "unaccounted", "duplicates", "out_of_order", "off_5bpm", "reconnects", "loadgen_late_p99_ms", "drain_s", "load_avg"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunk-s", default="0.25,1,2", help="seconds of signal per raw chunk, comma-separated")
    ap.add_argument("--devices", default="250,500,1000,2000,5000", help="K values, comma-separated (every chunk size)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of stream per step (the issue asks ≥ 60)")
    ap.add_argument("--connections", type=int, default=8, help="MQTT connections the devices are spread over (gateways)")
    ap.add_argument("--budget-ms", type=float, default=50.0)
    ap.add_argument("--p99-ms", type=float, default=250.0, help="the pass rule's end-to-end p99")
    ap.add_argument("--stop-after-fail", action="store_true", help="skip larger K of a chunk size once one failed")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for serve (repeatable)")
    ap.add_argument("--verbose", action="store_true", help="print serve's stats lines of each step")
    ap.add_argument("--recover", metavar="K_HIGH,K_NORMAL", help="one run: K_HIGH devices for --high-s, then K_NORMAL for --duration; "
                    "prints the drops per 5 s and the time back to 0 drops")
    ap.add_argument("--high-s", type=float, default=60.0, help="with --recover: seconds of the high load")
    ap.add_argument("--loadgen", nargs=9, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loadgen:
        prefix, devices, duration, chunk_s, t0, port, connections, normal, switch = args.loadgen
        loadgen(prefix, int(devices), float(duration), float(chunk_s), float(t0), int(port), int(connections), int(normal), float(switch))
        return
    if args.recover:
        recover(args)
        return
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run", flush=True)
    rows = []
    broker = Broker()
    try:
        for chunk_s in [float(c) for c in args.chunk_s.split(",")]:
            for k in [int(x) for x in args.devices.split(",")]:
                row = run_step(k, args.duration, chunk_s, args.connections, args.budget_ms, args.serve_arg, broker, args.verbose)
                row.pop("recovery")
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.stop_after_fail and (row["lost"] or row["p99_ms"] > args.p99_ms):
                    break
    finally:
        broker.stop()
    table(f"ppg-stream serve, live devices in real time over {args.connections} gateway connections, raw QoS 1, {args.duration:g} s per step, "
          "Mosquitto on this machine", COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    print()
    for chunk_s in sorted({r["chunk_s"] for r in rows}):
        held = [r["devices"] for r in rows if r["chunk_s"] == chunk_s and r["lost"] == 0 and r["p99_ms"] <= args.p99_ms]
        print(f"{chunk_s:g} s chunks: largest K with 0 lost and end-to-end p99 ≤ {args.p99_ms:g} ms: {max(held) if held else 'none of those tried'}")


def recover(args) -> None:
    try:
        high, normal = (int(x) for x in args.recover.split(","))
        chunk_s = float(args.chunk_s)
    except ValueError:
        sys.exit("bench_fleet: --recover takes K_HIGH,K_NORMAL (two integers) and one --chunk-s")
    if not 0 < normal < high:
        sys.exit("bench_fleet: --recover needs 0 < K_NORMAL < K_HIGH")
    switch_s = round(args.high_s / chunk_s) * chunk_s
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run", flush=True)
    broker = Broker()
    try:
        row = run_step(high, switch_s + args.duration, chunk_s, args.connections, args.budget_ms, args.serve_arg, broker, args.verbose,
                       normal_devices=normal, switch_s=switch_s)
    finally:
        broker.stop()
    recovery = row.pop("recovery")
    print(json.dumps(row), flush=True)
    table(f"ppg-stream serve past capacity and back: {high} devices for {switch_s:g} s, then {normal} for {args.duration:g} s, {chunk_s:g} s chunks, "
          f"{args.connections} gateway connections; per stats interval, seconds from the return to normal",
          RECOVERY_COLUMNS, [[r[c] for c in RECOVERY_COLUMNS] for r in recovery["intervals"]])
    back = recovery["back_to_0_drops_s"]
    print()
    during = [r for r in recovery["intervals"] if r["to_s"] <= 0]
    if not any(r["dropped_stale"] or r["dropped_chunks"] for r in during):
        worst = max((r["p99_ms"] for r in during), default=0.0)
        if worst <= args.p99_ms:
            print(f"no drops and p99 ≤ {args.p99_ms:g} ms while {high} devices sent: that load was not past this service's capacity here "
                  "(try a larger K_HIGH)")
        else:
            print(f"no drops while {high} devices sent, but p99 up to {worst:,.0f} ms: past the {args.p99_ms:g} ms rule, not yet shedding")
    if back is None:
        print("never back to 0 drops for the rest of the run: NOT within 30 s")
    else:
        print(f"back to 0 drops (and kept there) at most {back:g} s after the load returned to normal: {'within' if back <= 30 else 'NOT within'} 30 s")


if __name__ == "__main__":
    main()
