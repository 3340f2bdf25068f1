"""Scale-out on NATS JetStream with real nats-server processes: a 3-node cluster on loopback (R3
streams), `serve --nats` workers as subprocesses, gateways publishing through the project's own code.

One fleet run covers the failure cases in sequence, so the suite pays for one start-up: 50 devices,
3 workers; a worker killed with -9 mid-run; then a nats-server node stopped; then a 4th worker added.
Through all of it every window of every device must reach the heart-rate stream with the right
heart rate; duplicates are allowed and counted.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import numpy as np
import pytest

from tests.conftest import IN_CI, Collector, run_cli
from tests.nats_cluster import NatsCluster, nats_server_available
from tests.nats_helpers import Worker, eventually, publish_fleet, read_stream
from tests.serve_helpers import direct_estimates, raw_payloads, synthetic_recording

pytestmark = [pytest.mark.network, pytest.mark.slow]

PARTITIONS = 12


@pytest.fixture(scope="module")
def cluster():
    if not nats_server_available():
        if IN_CI:
            pytest.fail("nats-server is not installed (CI must provide it: apt-get install nats-server)")
        pytest.skip("nats-server is not installed")
    tag = uuid.uuid4().hex[:6]
    nodes = NatsCluster(3, prefixes=[f"mq{tag}", f"fl{tag}"], partitions=PARTITIONS, mqtt=True).start()
    yield nodes
    nodes.stop()


def dump_logs(workers: list[Worker]) -> None:
    """Every worker's warnings and ownership changes, for a failure's report (pytest shows stdout then)."""
    for i, w in enumerate(workers):
        for e in w.logs:
            if e.get("level") in ("warning", "error") or e.get("event") in ("partition acquired", "partition handed over", "partition lost", "text"):
                print(i, {k: v for k, v in e.items() if k not in ("_seen", "level")})


def worker_args(cluster: NatsCluster, prefix: str, node: int, *extra: str) -> tuple[str, ...]:
    return ("--nats", cluster.urls(first=node), "--topic-prefix", prefix, "--nats-partitions", str(PARTITIONS),
            "--idle-timeout", "120", "--stats-interval", "5", *extra)


async def test_workers_started_before_the_cluster_has_a_quorum_wait_for_it_then_share_the_partitions():
    """A deployment's boot: one node of three is up, so JetStream has no meta leader and answers
    "temporarily unavailable" or not at all. Workers started then must wait (saying so), not exit;
    once the other nodes come up they join and split the partitions."""
    if not nats_server_available():
        pytest.skip("nats-server is not installed")
    tag = uuid.uuid4().hex[:6]
    fresh = NatsCluster(3, prefixes=[f"boot{tag}"], partitions=PARTITIONS)
    workers = [Worker(worker_args(fresh, f"boot{tag}", 0)) for _ in range(3)]
    try:
        fresh.start_node(0)
        await asyncio.gather(*(w.start(timeout_s=60, until="JetStream not ready, set-up retried") for w in workers))
        for i in (1, 2):
            fresh.start_node(i)
        await asyncio.gather(*(w.wait_for_event(Worker.ready_event, 60) for w in workers))
        balanced = await eventually(lambda: sorted(len(w.owned()) for w in workers) == [4, 4, 4]
                                    and sorted(p for w in workers for p in w.owned()) == list(range(PARTITIONS)), 30)
        assert balanced, [w.owned() for w in workers]
    finally:
        codes = await asyncio.gather(*(w.stop() for w in workers))
        await asyncio.to_thread(fresh.stop)
    assert codes == [130, 130, 130] and not any(w.tracebacks() for w in workers), codes


async def test_one_gateway_command_over_nats_or_over_mqtt_to_nats_server_reaches_a_worker(cluster, synthetic_60s):
    """The same gateway command, once with --nats and once with --broker pointing at nats-server's
    own MQTT listener (same bytes); the servers' mapping partitions both; one worker serves them; an
    MQTT subscriber of nats-server (a dashboard) sees the heart rate the worker published on NATS.
    Ctrl-C on the worker hands its partitions back."""
    prefix = cluster.prefixes[0]
    path = str(synthetic_60s.path)
    direct = await asyncio.to_thread(run_cli, "--replay", path, "--speed", "max", "--stdout", "--no-mqtt")
    assert direct.returncode == 0, direct.stderr
    worker = await Worker(worker_args(cluster, prefix, 0)).start()
    dashboard = await Collector("127.0.0.1", cluster.mqtt_ports[2], f"{prefix}/+/hr").start()
    gateway = ("--replay", path, "--speed", "max", "--publish-raw", "--topic-prefix", prefix, "--log-json")
    try:
        await eventually(lambda: len(worker.owned()) == PARTITIONS, 30)
        over_mqtt, over_nats = await asyncio.gather(
            asyncio.to_thread(run_cli, *gateway, "--broker", f"mqtt://127.0.0.1:{cluster.mqtt_ports[1]}"),
            asyncio.to_thread(run_cli, *gateway, "--device-id", "syn60n", "--nats", cluster.urls(first=1)),
        )
        assert over_mqtt.returncode == 0 and over_nats.returncode == 0, (over_mqtt.stderr, over_nats.stderr)
        await eventually(lambda: len(dashboard.messages) >= 2 * synthetic_60s.n_windows, 60)
        stored = await read_stream(cluster.url(0), f"{prefix.upper()}_HR", f"{prefix}.*.hr")
        rc = await worker.stop()
    finally:
        worker.kill()
        await dashboard.stop()
    assert rc == 130 and not worker.tracebacks(), worker.logs[-6:]
    assert worker.events("worker left")[-1]["handed_over"] == PARTITIONS
    expected = {m["window"]: m for m in direct.messages}
    for device in ("syn60", "syn60n"):
        for source in (dashboard.messages, [m for m, _ in stored]):
            got = {m["window"]: m for m in source if m["device"] == device}
            assert got.keys() == expected.keys() == set(range(synthetic_60s.n_windows)), device
            for k, m in expected.items():
                assert abs(got[k]["bpm"] - m["bpm"]) <= 0.1, (device, k)


async def test_fifty_devices_every_window_through_a_worker_kill_a_node_stop_and_a_fourth_worker(cluster):
    prefix = cluster.prefixes[1]
    recordings = [synthetic_recording(f"dev{i:02d}", 60.0, seed=700 + i) for i in range(50)]
    chunks = [c for rec in recordings for c in raw_payloads(rec, prefix, rec.subject, chunk_s=1.0)]
    n_windows = len(recordings[0].labels_bpm)
    expected = {(rec.subject, k) for rec in recordings for k in range(n_windows)}
    workers = [Worker(worker_args(cluster, prefix, i)) for i in range(3)]
    try:
        await asyncio.gather(*(w.start() for w in workers))
        assert await eventually(lambda: sorted(p for w in workers for p in w.owned()) == list(range(PARTITIONS)), 30), [w.owned() for w in workers]
        started = asyncio.Event()
        feed = asyncio.create_task(publish_fleet(cluster.urls(first=2), chunks, speed=2.0, started=started))  # 60 s of data in 30 s
        await started.wait()
        t0 = time.monotonic()

        # a worker dies mid-run (kill -9): the others take its partitions when its leases lapse
        await asyncio.sleep(6.0)
        victim = workers[0]
        orphaned = victim.owned()
        assert orphaned
        victim.kill()
        t_kill = time.monotonic()
        survivors = workers[1:]

        def taken_over() -> dict[int, dict]:
            first = {}
            for w in survivors:
                for e in w.events("partition acquired"):
                    if e["_seen"] > t_kill and e["partition"] in orphaned:
                        first.setdefault(e["partition"], e)
            return first if len(first) == len(orphaned) else {}

        takeovers = await eventually(taken_over, 30)
        assert takeovers, ([w.owned() for w in survivors], orphaned)
        takeover_s = max(e["_seen"] for e in takeovers.values()) - t_kill
        print("\nkill -9 at", time.strftime("%H:%M:%S"), [(p, round(e["_seen"] - t_kill, 2), e["steps_ms"]) for p, e in takeovers.items()])

        # a nats-server node stops (the one worker 1 is connected to); the cluster goes on with two
        await asyncio.sleep(max(0.0, 16.0 - (time.monotonic() - t0)))
        await asyncio.to_thread(cluster.stop_node, 1, signal.SIGTERM)
        assert await eventually(lambda: workers[1].events("NATS reconnected"), 15)

        # a fourth worker joins: partitions rebalance to 4 + 4 + 4
        newcomer = Worker(worker_args(cluster, prefix, 2))
        workers.append(newcomer)
        await newcomer.start()
        live = [workers[1], workers[2], newcomer]
        balanced = await eventually(lambda: sorted(len(w.owned()) for w in live) == [4, 4, 4]
                                    and sorted(p for w in live for p in w.owned()) == list(range(PARTITIONS)), 30)
        assert balanced, [w.owned() for w in live]
        await asyncio.to_thread(cluster.start_node, 1)  # the node comes back

        await feed
        hr_stream = f"{prefix.upper()}_HR"

        async def complete():
            got = await read_stream(cluster.url(0), hr_stream, f"{prefix}.*.hr")
            return got if {(m["device"], m["window"]) for m, _ in got} >= expected else None

        stored = await eventually(complete, 60, every_s=2.0)
        if not stored:
            stored = await read_stream(cluster.url(0), hr_stream, f"{prefix}.*.hr")
        rcs = await asyncio.gather(*(w.stop() for w in live))
    finally:
        for w in workers:
            w.kill()
        dump_logs(workers)
        if cluster.procs[1] is None:
            await asyncio.to_thread(cluster.start_node, 1)

    keys = [(m["device"], m["window"]) for m, _ in stored]
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} windows lost, e.g. {sorted(missing)[:10]}"
    assert set(keys) == expected
    duplicates = len(keys) - len(set(keys))
    print(f"\ntakeover after kill -9: {takeover_s:.1f} s; HR messages {len(keys)}, duplicates {duplicates}")
    assert takeover_s <= 10.0, f"takeover took {takeover_s:.1f} s"
    assert all(rc == 130 for rc in rcs) and not any(w.tracebacks() for w in workers)

    # the right heart rate: per device close to the truth, and window for window the same as a direct
    # replay: a new owner rebuilds filters and tracker from 30 s of history (allowing a few windows
    # right after a takeover to differ)
    latest = {}
    for m, _ in stored:
        latest[(m["device"], m["window"])] = m["bpm"]
    direct = await asyncio.to_thread(direct_estimates, recordings)
    errors = [np.mean([abs(latest[(rec.subject, k)] - rec.labels_bpm[k]) for k in range(n_windows)]) for rec in recordings]
    assert np.mean(errors) < 3.0 and max(errors) < 8.0, errors
    same = np.mean([abs(latest[key] - direct[key[0]][key[1]]) <= 0.1 for key in expected])
    print(f"MAE per device: mean {np.mean(errors):.2f}, max {max(errors):.2f} bpm; windows equal to a direct replay: {same:.1%}")
    assert same >= 0.95, same
