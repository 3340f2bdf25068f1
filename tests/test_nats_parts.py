"""The NATS scale-out's parts: subject names and the assignment rule (pure), and leases, progress,
stream set-up and the worker's refusals against a real single nats-server started for this module."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import nats
import nats.js.errors
import pytest

from ppg_stream.stream.nats.leases import LeaseConfigError, Leases, Progress
from ppg_stream.stream.nats.jetstream import NatsSetupError, StreamPlan, check_mapping, ensure_streams, parse_nats_urls
from ppg_stream.stream.nats.subjects import mapping, parse_partitioned, raw_subject, server_config, stream_base, subject_prefix, topic_to_subject
from ppg_stream.stream.nats.partition_assignment import assign
from tests.conftest import IN_CI, free_port, run_cli, wait_port
from tests.nats_cluster import NATS_SERVER, NatsCluster, nats_server_available


# ---- pure ----------------------------------------------------------------------------------------
def test_subjects_match_what_nats_servers_mqtt_listener_makes_of_topics():
    assert topic_to_subject("ppg/dev1/raw") == "ppg.dev1.raw"
    assert topic_to_subject("home/ppg/wrist.left/hr") == "home.ppg.wrist//left.hr"  # `.` → `//`, as nats-server does
    assert raw_subject("ppg", "wrist.left") == "ppg.wrist//left.raw"
    assert subject_prefix("home/ppg/") == "home.ppg"
    assert parse_partitioned("ppg", "ppg.raw.7.wrist//left") == (7, "wrist.left")
    for bad in ("ppg.raw.x.dev", "ppg.raw.7", "ppg.dev.raw", "ppg.raw.7.a.b", "other.raw.1.dev"):
        assert parse_partitioned("ppg", bad) is None, bad
    assert mapping("ppg", 16) == ("ppg.*.raw", "ppg.raw.{{partition(16,1)}}.{{wildcard(1)}}")
    assert '"ppg.*.raw": "ppg.raw.{{partition(16,1)}}.{{wildcard(1)}}"' in server_config("ppg", 16)
    assert stream_base("home.ppg") == "HOME_PPG"


def test_assignment_is_balanced_deterministic_and_moves_little_when_workers_come_and_go():
    workers = [f"w{i}" for i in range(3)]
    plan = assign(16, workers)
    assert sorted(plan) == list(range(16))
    loads = sorted(list(plan.values()).count(w) for w in workers)
    assert loads[-1] - loads[0] <= 1 and max(loads) == 6  # ⌈16 / 3⌉
    assert assign(16, list(reversed(workers))) == plan  # every worker computes the same plan
    grown = assign(16, workers + ["w3"])
    assert sorted(list(grown.values()).count(w) for w in workers + ["w3"]) == [4, 4, 4, 4]
    moved = [p for p in plan if grown[p] != plan[p]]
    assert 4 <= len(moved) <= 4 + 2  # the newcomer's 4, and at most a couple shuffled by the capacity rule
    shrunk = assign(16, ["w0", "w2"])
    assert sum(shrunk[p] != plan[p] for p in plan if plan[p] != "w1") <= 2  # mostly only the leaver's partitions move
    assert assign(4, []) == {}


def test_nats_url_parsing_names_the_bad_url():
    assert parse_nats_urls("nats://a:4222, nats://b") == ["nats://a:4222", "nats://b"]
    for bad in ("", "http://a", "nats://", "nats://a:99999", "a:4222"):
        with pytest.raises(ValueError, match="--nats"):
            parse_nats_urls(bad)


# ---- against a real nats-server ------------------------------------------------------------------
@pytest.fixture(scope="module")
def node():
    if not nats_server_available():
        if IN_CI:
            pytest.fail("nats-server is not installed (CI must provide it)")
        pytest.skip("nats-server is not installed")
    server = NatsCluster(1, prefixes=["mapped"], partitions=4).start()
    yield server
    server.stop()


async def _js(node):
    nc = await nats.connect(node.url(0))
    return nc, nc.jetstream(timeout=5.0)


@pytest.mark.network
async def test_leases_one_owner_at_a_time_expiry_takeover_and_release(node):
    nc, js = await _js(node)
    bucket = f"leases_{uuid.uuid4().hex[:6]}"
    try:
        a = await Leases.open(js, bucket, "wa", ttl_s=2.0, replicas=1, margin_s=0.5)
        b = await Leases.open(js, bucket, "wb", ttl_s=2.0, replicas=1, margin_s=0.5)
        assert await a.acquire(0) and a.valid(0)
        assert not await b.acquire(0)  # held
        assert await a.renew(0)
        await a.heartbeat([0])
        await b.heartbeat([])
        assert await a.members() == {"wa", "wb"}

        # a stops renewing (as if killed): it stops trusting its lease before the server lets b in
        t0 = time.monotonic()
        while a.valid(0):
            assert not await b.acquire(0)
            await asyncio.sleep(0.05)
        lapsed_locally = time.monotonic() - t0
        while not await b.acquire(0):
            await asyncio.sleep(0.05)
        taken = time.monotonic() - t0
        assert 1.0 <= lapsed_locally < taken <= 3.0, (lapsed_locally, taken)
        assert not await a.renew(0)  # compare-and-set on the revision: a learns it lost the lease
        assert 0 not in a.held
        assert await b.members() == {"wb"}  # a's heartbeat expired with its lease

        await b.release(0)  # handed back: taken at once, no expiry to wait for
        assert await a.acquire(0)
        await b.leave()
        with pytest.raises(LeaseConfigError, match="same --nats-lease-s"):
            await Leases.open(js, bucket, "wc", ttl_s=5.0, replicas=1)
    finally:
        await nc.close()


class _ExpiresDuringCreate:
    """The JetStream context of one KeyValue, except that its first read of `key` waits until the key has
    expired on the server: what a loaded machine does to `create`'s second step (refused write, then a read
    to tell a live key from a deleted one) when the lease lapses between the two."""

    def __init__(self, js, probe_kv, key: str) -> None:
        self._js, self._probe_kv, self._key = js, probe_kv, key
        self.delayed = 0

    def __getattr__(self, name):
        return getattr(self._js, name)

    async def get_msg(self, *args, **kwargs):
        if not self.delayed and kwargs.get("subject", "").endswith(self._key):
            self.delayed += 1
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    await self._probe_kv.get(self._key)
                except nats.js.errors.KeyNotFoundError:
                    break  # gone: now let create's read go ahead
                await asyncio.sleep(0.05)
        return await self._js.get_msg(*args, **kwargs)


@pytest.mark.network
async def test_a_lease_that_expires_during_create_is_taken_not_an_error(node):
    nc, js = await _js(node)
    bucket = f"leases_{uuid.uuid4().hex[:6]}"
    try:
        a = await Leases.open(js, bucket, "wa", ttl_s=2.0, replicas=1)
        b = await Leases.open(js, bucket, "wb", ttl_s=2.0, replicas=1)
        assert await a.acquire(1)  # a holds it, then stops renewing
        slow = _ExpiresDuringCreate(b.kv._js, a.kv, "p.1")
        b.kv._js = slow
        assert await b.acquire(1)  # the key expired between create's refused write and its read: b has it now
        assert slow.delayed == 1 and b.valid(1)
        assert not await a.renew(1)  # and a learns it lost it
    finally:
        await nc.close()


@pytest.mark.network
async def test_progress_only_moves_forward_and_survives_without_expiry(node):
    nc, js = await _js(node)
    try:
        progress = await Progress.open(js, f"progress_{uuid.uuid4().hex[:6]}", replicas=1)
        assert await progress.get(3) == 0
        await progress.put(3, 120)
        await progress.put(3, 100)  # never backwards from one writer
        assert await progress.get(3) == 120
    finally:
        await nc.close()


@pytest.mark.network
async def test_streams_refuse_another_partition_count_and_the_probe_finds_a_missing_mapping(node):
    nc, js = await _js(node)
    try:
        plan = StreamPlan("mapped", "MAPPED_RAW", "MAPPED_HR", 4, 1, 60.0, 1 << 24)
        await ensure_streams(js, plan)
        await ensure_streams(js, plan)  # idempotent: workers start together
        await check_mapping(js, plan)  # the server maps mapped.*.raw into the stream: nothing stored by the probe
        assert (await js.stream_info("MAPPED_RAW")).state.messages == 0
        with pytest.raises(NatsSetupError, match="--nats-partitions 8: use the same everywhere"):
            await ensure_streams(js, StreamPlan("mapped", "MAPPED_RAW", "MAPPED_HR", 8, 1, 60.0, 1 << 24))
        unmapped = StreamPlan("plain", "PLAIN_RAW", "PLAIN_HR", 4, 1, 60.0, 1 << 24)
        await ensure_streams(js, unmapped)
        with pytest.raises(NatsSetupError, match=r'nothing stores plain.<device>.raw.*mappings \{ "plain.\*.raw"'):
            await check_mapping(js, unmapped, wait_s=0.5)
    finally:
        await nc.close()


@pytest.mark.slow
@pytest.mark.network
def test_serve_nats_mistakes_are_one_line_errors(node):
    unmapped = run_cli("serve", "--nats", node.url(0), "--topic-prefix", "nomap", "--nats-partitions", "4")
    assert unmapped.returncode == 2 and "Traceback" not in unmapped.stderr
    line = [x for x in unmapped.stderr.splitlines() if x.startswith("ppg-stream: error:")]
    assert len(line) == 1 and "mappings {" in line[0] and "nomap.raw.{{partition(4,1)}}" in line[0], unmapped.stderr
    port = free_port()
    plain = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        no_jetstream = run_cli("serve", "--nats", f"nats://127.0.0.1:{port}")
    finally:
        plain.terminate()
        plain.wait(timeout=10)
    assert no_jetstream.returncode == 2 and "Traceback" not in no_jetstream.stderr
    assert no_jetstream.stderr.startswith("ppg-stream: error: JetStream does not answer") and len(no_jetstream.stderr.splitlines()) == 1, no_jetstream.stderr
    nobody = run_cli("serve", "--nats", f"nats://127.0.0.1:{free_port()}")
    assert nobody.returncode == 2 and "ppg-stream: error: cannot reach NATS" in nobody.stderr and "Traceback" not in nobody.stderr
    for args, says in (
        (("serve", "--nats", "mqtt://x"), "--nats 'mqtt://x'"),
        (("serve", "--nats-stream", "X"), "--nats-stream applies to --nats only"),
        (("serve", "--nats", node.url(0), "--nats-history-s", "4"), "--nats-history-s 4: at least 10 s"),
        (("--demo", "--nats", node.url(0)), "give --publish-raw too"),
    ):
        result = run_cli(*args)
        assert result.returncode == 2 and result.stderr.startswith("ppg-stream: error: ") and says in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_no_stream_answering_is_first_an_election_then_a_missing_mapping():
    """During a leader election JetStream answers "no responders" for seconds: the log must not send an
    operator to the mapping then; only when it persists is a missing stream or mapping the likely cause."""
    from ppg_stream.stream.nats.publisher import NO_STREAM_PATIENCE_S, _why

    error = nats.js.errors.NoStreamResponseError()
    assert "electing a stream leader" in _why(error, 2.0) and "mapping" not in _why(error, 2.0)
    assert "mapping configured" in _why(error, NO_STREAM_PATIENCE_S + 1)
