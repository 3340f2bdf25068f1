"""Soak: is memory flat over hours of stream time? A service runs for months.

    python benchmarks/bench_soak.py                    # 200 devices × 1 h of stream time, MQTT if a broker answers
    python benchmarks/bench_soak.py --devices 50 --hours 6 --no-mqtt

The one runtime serves K synthetic devices (2 s chunks, devices interleaved as live streams arrive) as
fast as it can, publishing every window to the MQTT broker on 127.0.0.1:1883 (QoS 1, acknowledged)
unless --no-mqtt; devices come and go (a tenth of them leave and new ones join every 10 minutes of
stream time, as in a ward). Printed: the process's RSS and Python's traced memory every 10 minutes
of stream time, and the growth per window between the first and the last sample.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from ppg_stream.replay.synthetic import synthesize  # noqa: E402
from ppg_stream.stream.core.chunk import ACC, PPG, Chunk  # noqa: E402
from ppg_stream.stream.core.engine import InferenceEngine  # noqa: E402
from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime  # noqa: E402

RATES = {PPG: 64.0, ACC: 32.0}
CHUNK_S = 2.0
POOL_S = 600.0  # distinct signal per pool recording; devices loop over it (time keeps increasing)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def broker_up() -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", 1883)) == 0


async def soak(devices: int, hours: float, mqtt: bool) -> None:
    engine = InferenceEngine("student")
    warm_up_runtime(engine, RATES)
    publishers = []
    if mqtt:
        from ppg_stream.stream.mqtt.publisher import MqttPublisher
        from ppg_stream.stream.mqtt.settings import BrokerSettings

        pub = MqttPublisher(BrokerSettings("127.0.0.1", 1883), "soak", "soak/_service/soak/status", outbox_size=100_000)
        await pub.start()
        publishers.append(pub)
    tracemalloc.start()  # before any device exists, so replaced devices are seen leaving, not only new ones arriving
    runtime = Runtime(engine, publishers, RuntimeConfig(speed=None, max_devices=devices * 2, queue_chunks=1024))
    pool = []
    for p in range(8):
        syn = synthesize(POOL_S, seed=500 + p)
        pool.append((syn.ppg[:, None], syn.acc_g))
    n_ppg, n_acc = int(CHUNK_S * 64), int(CHUNK_S * 32)
    blocks_per_pool = int(POOL_S / CHUNK_S) - 1
    names = [f"d{i}" for i in range(devices)]
    states = {n: runtime.open_device(n, frozenset(RATES), RATES) for n in names}
    starts = {n: 0.0 for n in names}  # stream time at which each device (re)joined
    next_id = devices
    rows = []
    t_end = hours * 3600.0
    sample_every = 600.0
    t_wall = time.perf_counter()
    stream_t = 0.0
    while stream_t < t_end:
        for i, name in enumerate(list(states)):
            local = stream_t - starts[name]
            b = int(local / CHUNK_S) % blocks_per_pool
            ppg, acc = pool[i % len(pool)]
            tp = local + np.arange(n_ppg) / 64.0
            ta = local + np.arange(n_acc) / 32.0
            now = time.perf_counter()
            runtime.offer(states[name], Chunk(PPG, tp, ppg[b * n_ppg : (b + 1) * n_ppg]), now)
            runtime.offer(states[name], Chunk(ACC, ta, acc[b * n_acc : (b + 1) * n_acc]), now)
        runtime.tick()
        await asyncio.sleep(0)  # the publisher's socket
        stream_t += CHUNK_S
        if stream_t % sample_every < CHUNK_S:
            # a tenth of the devices leave, as many new ones join
            for name in list(states)[: devices // 10]:
                runtime.drop_device(name, "soak: left")
                del states[name], starts[name]
                new = f"d{next_id}"
                next_id += 1
                states[new] = runtime.open_device(new, frozenset(RATES), RATES)
                starts[new] = stream_t
            gc.collect()
            rows.append((stream_t / 60, runtime.windows_total, rss_mib(), tracemalloc.get_traced_memory()[0] / 2**20))
            print(f"  {rows[-1][0]:6.0f} min  {rows[-1][1]:>9,} windows  RSS {rows[-1][2]:7.1f} MiB  traced {rows[-1][3]:6.1f} MiB", flush=True)
    wall = time.perf_counter() - t_wall
    for p in publishers:
        report = await p.close()
        print(f"  MQTT: {report}")
    print(f"\n## Soak: {devices} devices × {hours:g} h of stream time ({runtime.windows_total:,} windows in {wall:.0f} s; "
          f"{'MQTT QoS 1 to 127.0.0.1:1883' if mqtt else 'no MQTT'}; a tenth of the devices replaced every 10 min)\n")
    print("| stream time | windows | RSS MiB | Python traced MiB |")
    print("|---|---|---|---|")
    for minutes, windows, rss, traced in rows:
        print(f"| {minutes:.0f} min | {windows:,} | {rss:.1f} | {traced:.1f} |")
    if len(rows) >= 3:
        (m1, w1, r1, t1), (m2, w2, r2, t2) = rows[1], rows[-1]
        print(f"\nfrom {m1:.0f} to {m2:.0f} min: RSS {r2 - r1:+.1f} MiB, traced {t2 - t1:+.2f} MiB over {w2 - w1:,} windows "
              f"({(t2 - t1) * 2**20 / max(1, w2 - w1):+.1f} traced bytes per window)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--no-mqtt", action="store_true")
    args = ap.parse_args()
    mqtt = not args.no_mqtt and broker_up()
    asyncio.run(soak(args.devices, args.hours, mqtt))


if __name__ == "__main__":
    main()
