"""`serve --nats` workers on a 3-node JetStream cluster: devices sustained, CPU per device, takeover.

    python benchmarks/bench_cluster.py                               # 1, 2, 3 workers x 250, 500, 1000 devices
    python benchmarks/bench_cluster.py --workers 1,3 --devices 500 --duration 40
    python benchmarks/bench_cluster.py --kill-only --devices 300    # just the kill -9 run

Everything runs on this machine: three nats-server processes (a cluster on loopback, R3 streams, the
partition mapping in their configuration), W workers (`ppg-stream serve --nats`, each its own
process), a load generator process publishing K devices' raw chunks at real-time rate through the
project's gateway publisher (JetStream, acknowledged, in order per device), and a checker here that
subscribes to `<prefix>.*.hr`. The workers and the servers share the same 2 cores, so more workers
cannot be faster here: the honest figure is CPU per device (worker CPU-seconds per device-second),
which is what sizing on separate machines needs. Per step: worker CPU (cores, all workers) and
per-device CPU, nats-server CPU (all nodes), windows/s, the window latency inside the worker
(`latency_ms`, chunk received → handed to the publisher) p99 against the budget, end to end
(chunk due → HR received) p50/p99 with how late the load generator itself was (on a busy machine it
is part of the end-to-end figure), and lost / duplicate windows. The last table is a run
with a worker killed (-9) a third of the way in: takeover time (kill → every orphaned partition
acquired by another worker), the longest silence of any device, lost and duplicate windows (read
back from the R3 heart-rate stream).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fleet import proc_cpu_s, proc_rss_mib, table  # noqa: E402

HEADER = struct.Struct("<BBBBIIIdd")  # the raw-chunk header (docs/messages.md, "Raw chunks")
POOL = 16
PARTITIONS = 12


# ---- load generator (its own process) ----------------------------------------------------------
async def loadgen(urls: str, prefix: str, devices: int, duration_s: float, chunk_s: float, t0: float) -> None:
    import nats

    from ppg_stream.replay.synthetic import synthesize
    from ppg_stream.stream.nats.publisher import NatsRawPublisher

    n_chunks = int(duration_s / chunk_s)
    pool = []
    for p in range(POOL):
        syn = synthesize(duration_s + 4 * chunk_s, seed=2000 + p)
        ppg, acc = syn.ppg.astype("<f4"), syn.acc_g.astype("<f4")
        m, a = int(chunk_s * syn.fs_ppg), int(chunk_s * syn.fs_acc)
        pool.append([(ppg[r * m : (r + 1) * m].tobytes(), acc[r * a : (r + 1) * a].tobytes(), m, a) for r in range(n_chunks)])
    nc = await nats.connect(urls.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.25)
    publisher = NatsRawPublisher(nc.jetstream(timeout=5.0), outbox_size=10_000_000, flush_timeout_s=60.0)
    topics = [f"{prefix}/dev{i:05d}/raw" for i in range(devices)]
    stream_ids = [(i * 2654435761) & 0xFFFFFFFF for i in range(devices)]
    due = sorted((t0 + chunk_s * i / devices + (r + 1) * chunk_s, r, i) for r in range(n_chunks) for i in range(devices))
    lag = np.zeros(len(due))
    for n, (at, r, i) in enumerate(due):
        delay = at - time.time()
        if delay > 0.002:
            await asyncio.sleep(delay)
        lag[n] = time.time() - at
        ppg, acc, m, a = pool[i % POOL][r]
        publisher.publish_payload(topics[i], HEADER.pack(1, 1, 1, 3, stream_ids[i], 2 * r, m, 64.0, r * chunk_s) + ppg)
        publisher.publish_payload(topics[i], HEADER.pack(1, 2, 3, 3, stream_ids[i], 2 * r + 1, a, 32.0, r * chunk_s) + acc)
    undelivered = await publisher.close()
    await nc.close()
    if undelivered:
        print(f"loadgen: {undelivered} chunks not stored", file=sys.stderr)
    print(json.dumps({"lag_p99_ms": float(np.percentile(lag, 99)) * 1000.0}), flush=True)


# ---- workers -----------------------------------------------------------------------------------
class WorkerProc:
    def __init__(self, urls: str, prefix: str, devices: int, budget_ms: float) -> None:
        self.args = ["serve", "--nats", urls, "--topic-prefix", prefix, "--nats-partitions", str(PARTITIONS), "--log-json",
                     "--idle-timeout", "600", "--max-devices", str(devices + 10), "--stats-interval", "5", "--budget-ms", str(budget_ms)]
        self.logs: list[dict] = []
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ppg_stream.stream.cli", *self.args, cwd=ROOT,
                                                         stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for line in self.proc.stderr:
            if line.startswith(b"{"):
                entry = json.loads(line)
                entry["_seen"] = time.time()
                self.logs.append(entry)

    def owned(self) -> list[int]:
        for e in reversed(self.logs):
            if "owned" in e:
                return e["owned"]
        return []

    def acquired(self, after: float) -> dict[int, float]:
        return {e["partition"]: e["_seen"] for e in self.logs if e.get("event") == "partition acquired" and e["_seen"] > after}

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def wait_owned(workers: list[WorkerProc], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sorted(p for w in workers if w.proc.returncode is None for p in w.owned()) != list(range(PARTITIONS)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"partitions not all owned after {timeout_s} s: {[w.owned() for w in workers]}")
        await asyncio.sleep(0.2)


# ---- checker -----------------------------------------------------------------------------------
class Checker:
    def __init__(self) -> None:
        self.first: dict[tuple[str, int], float] = {}
        self.latency_ms: list[float] = []
        self.duplicates = 0
        self.late = 0

    async def start(self, url: str, prefix: str) -> None:
        import nats

        self.nc = await nats.connect(url, max_reconnect_attempts=-1, pending_size=64 * 1024 * 1024)
        await self.nc.subscribe(f"{prefix}.*.hr", cb=self._on, pending_msgs_limit=1_000_000, pending_bytes_limit=512 * 1024 * 1024)

    async def _on(self, msg) -> None:
        now = time.time()
        m = json.loads(msg.data)
        key = (m["device"], m["window"])
        if key in self.first:
            self.duplicates += 1
            return
        self.first[key] = now
        self.latency_ms.append(m["latency_ms"])
        self.late += bool(m["late"])


async def read_hr(url: str, stream: str, subject: str) -> list[dict]:
    from tests.nats_helpers import read_stream

    return [m for m, _ in await read_stream(url, stream, subject)]


async def run_step(cluster, prefix: str, workers_n: int, devices: int, duration_s: float, chunk_s: float, budget_ms: float,
                   e2e_budget_ms: float, kill_at: float | None = None) -> dict:
    urls = [cluster.urls(first=i % cluster.n) for i in range(workers_n)]
    workers = [WorkerProc(urls[i], prefix, devices, budget_ms) for i in range(workers_n)]
    await asyncio.gather(*(w.start() for w in workers))
    await wait_owned(workers)
    checker = Checker()
    await checker.start(cluster.url(0), prefix)
    t0 = time.time() + 3.0
    gen = await asyncio.create_subprocess_exec(sys.executable, __file__, "--loadgen", cluster.urls(first=2), prefix, str(devices), str(duration_s),
                                               str(chunk_s), repr(t0), cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    warm = 8.0 + chunk_s
    await asyncio.sleep(max(0.0, t0 + warm - time.time()))
    pids = [w.proc.pid for w in workers]
    servers = [p.pid for p in cluster.procs if p is not None]
    cpu0, srv0, wall0 = sum(map(proc_cpu_s, pids)), sum(map(proc_cpu_s, servers)), time.time()
    killed = None
    if kill_at is not None:
        await asyncio.sleep(max(0.0, t0 + kill_at - time.time()))
        victim = workers[0]
        orphaned, t_kill = victim.owned(), time.time()
        cpu_victim = proc_cpu_s(victim.proc.pid)
        victim.proc.kill()
        killed = (victim, orphaned, t_kill, cpu_victim)
    gen_out, _ = await gen.communicate()
    loadgen_lag = json.loads(gen_out.decode().strip().splitlines()[-1])["lag_p99_ms"]
    alive = [w for w in workers if w.proc.returncode is None]
    cpu1 = sum(proc_cpu_s(w.proc.pid) for w in alive) + (killed[3] if killed else 0.0)
    srv1, wall1 = sum(map(proc_cpu_s, servers)), time.time()
    rss = max(proc_rss_mib(w.proc.pid) for w in alive)
    await asyncio.sleep(3.0)  # the last windows
    n_windows = int((int(duration_s / chunk_s) * chunk_s - 8.0) / 2.0) + 1
    expected = {(f"dev{i:05d}", k) for i in range(devices) for k in range(n_windows)}
    offsets = {f"dev{i:05d}": chunk_s * i / devices for i in range(devices)}
    e2e = []
    for (device, k), seen in checker.first.items():
        published = t0 + offsets[device] + np.ceil((2.0 * k + 8.0) / chunk_s - 1e-9) * chunk_s
        e2e.append((seen - published) * 1000.0)
    e2e = np.array(e2e) if e2e else np.zeros(1)
    lat = np.array(checker.latency_ms) if checker.latency_ms else np.zeros(1)
    row = {
        "workers": workers_n, "devices": devices,
        "worker_cores": (cpu1 - cpu0) / (wall1 - wall0), "server_cores": (srv1 - srv0) / (wall1 - wall0), "rss": rss,
        "windows_s": len(checker.first) / max(1e-9, duration_s - warm),
        "lat_p99": float(np.percentile(lat, 99)), "e2e_p50": float(np.percentile(e2e, 50)), "e2e_p99": float(np.percentile(e2e, 99)),
        "lost_live": len(expected - set(checker.first)), "dup_live": checker.duplicates, "loadgen_lag_p99": loadgen_lag,
    }
    row["cpu_ms_per_device_s"] = 1000.0 * row["worker_cores"] / devices
    row["held"] = row["lost_live"] == 0 and row["lat_p99"] <= budget_ms and row["e2e_p99"] <= e2e_budget_ms
    if killed is not None:
        victim, orphaned, t_kill, _ = killed
        taken: dict[int, float] = {}
        for w in alive:
            for p, seen in w.acquired(t_kill).items():
                if p in orphaned:
                    taken.setdefault(p, seen)
        row["takeover_s"] = max(taken.values()) - t_kill if len(taken) == len(orphaned) else float("nan")
        stored = await read_hr(cluster.url(0), f"{prefix.upper()}_HR", f"{prefix}.*.hr")
        keys = [(m["device"], m["window"]) for m in stored]
        row["lost"] = len(expected - set(keys))
        row["duplicates"] = len(keys) - len(set(keys))
        arrivals: dict[str, list[float]] = {}
        for (device, _k), seen in checker.first.items():
            arrivals.setdefault(device, []).append(seen)
        row["max_silence_s"] = max(float(np.max(np.diff(sorted(v)))) for v in arrivals.values() if len(v) > 1)
    await checker.nc.close()
    await asyncio.gather(*(w.stop() for w in alive))
    return row


async def main_async(args) -> None:
    from tests.nats_cluster import NatsCluster

    steps = [(w, k) for w in [int(x) for x in args.workers.split(",")] for k in [int(x) for x in args.devices.split(",")]] if not args.kill_only else []
    prefixes = [f"b{uuid.uuid4().hex[:6]}" for _ in range(len(steps) + 1)]
    cluster = NatsCluster(3, prefixes=prefixes, partitions=PARTITIONS)
    await asyncio.to_thread(cluster.start)
    try:
        rows = []
        for (w, k), prefix in zip(steps, prefixes):
            row = await run_step(cluster, prefix, w, k, args.duration, args.chunk_s, args.budget_ms, args.e2e_budget_ms)
            print({key: (round(v, 3) if isinstance(v, float) else v) for key, v in row.items()}, flush=True)
            rows.append(row)
        kill_devices = int(args.devices.split(",")[len(args.devices.split(",")) // 2]) if not args.kill_only else int(args.devices.split(",")[0])
        kill = await run_step(cluster, prefixes[-1], 3, kill_devices, args.kill_duration, args.chunk_s, args.budget_ms, args.e2e_budget_ms,
                              kill_at=args.kill_duration / 3)
        print({key: (round(v, 3) if isinstance(v, float) else v) for key, v in kill.items()}, flush=True)
    finally:
        cluster.stop()
    if rows:
        table(f"serve --nats on a 3-node JetStream cluster (R3), {args.chunk_s:g} s chunks, {args.duration:g} s per step, {PARTITIONS} partitions, all on this {os.cpu_count()}-core machine",
              ["workers", "devices", "worker CPU (cores)", "CPU ms per device-s", "nats-server CPU (cores, 3 nodes)", "peak RSS MiB", "windows/s",
               f"latency p99 ms (budget {args.budget_ms:g})", "e2e p50 / p99 ms", "load generator late p99 ms", "lost", "duplicates"],
              [[r["workers"], r["devices"], round(r["worker_cores"], 3), round(r["cpu_ms_per_device_s"], 3), round(r["server_cores"], 3), round(r["rss"]),
                round(r["windows_s"]), round(r["lat_p99"], 2), f"{r['e2e_p50']:.0f} / {r['e2e_p99']:.0f}", round(r["loadgen_lag_p99"]), r["lost_live"], r["dup_live"]] for r in rows])
        for w in sorted({r["workers"] for r in rows}):
            held = [r["devices"] for r in rows if r["workers"] == w and r["held"]]
            print(f"{w} worker(s): largest K held (no loss, latency p99 ≤ {args.budget_ms:g} ms, e2e p99 ≤ {args.e2e_budget_ms:g} ms): {max(held) if held else 'none'}")
    table(f"kill -9 of one of 3 workers at {args.kill_duration / 3:g} s ({kill['devices']} devices, {args.kill_duration:g} s)",
          ["takeover s", "longest device silence s", "lost windows", "duplicate windows", "e2e p99 ms"],
          [[round(kill["takeover_s"], 2), round(kill["max_silence_s"], 2), kill["lost"], kill["duplicates"], round(kill["e2e_p99"])]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--devices", default="250,500,1000")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of stream per step")
    ap.add_argument("--kill-duration", type=float, default=45.0, help="seconds of stream of the kill run")
    ap.add_argument("--kill-only", action="store_true")
    ap.add_argument("--chunk-s", type=float, default=1.0, help="seconds of signal per raw chunk")
    ap.add_argument("--budget-ms", type=float, default=50.0)
    ap.add_argument("--e2e-budget-ms", type=float, default=1000.0, help="end-to-end p99 allowed (half a hop)")
    ap.add_argument("--loadgen", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loadgen:
        urls, prefix, devices, duration, chunk_s, t0 = args.loadgen
        asyncio.run(loadgen(urls, prefix, int(devices), float(duration), float(chunk_s), float(t0)))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
