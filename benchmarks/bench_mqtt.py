"""MQTT client layer, side by side in one run against a real Mosquitto this script starts (and stops):

    python benchmarks/bench_mqtt.py            # full
    python benchmarks/bench_mqtt.py --quick    # fewer messages

(a) QoS-1 publish of HR messages (JSON, ~210 bytes, 5,000 device topics) with many in flight, until every
    one is acknowledged: messages/s, client CPU per message, Mosquitto's CPU per message.
(b) receive of small binary payloads (192 bytes: a raw sensor chunk) on the wildcard `<prefix>/+/raw`,
    flooded by a separate load-generator process: messages/s, client CPU per message, loss.
(c) the MQTT side of the goal (5,000 live devices in one process): raw chunks in at a paced rate from another
    process, one HR message out per two chunks; CPU of the service process and of Mosquitto, loss.
(d) the whole pipeline at --speed max with and without publishing every window: CPU per window.

Clients: aiomqtt (the previous publisher: 256 publishes gathered per batch), paho-mqtt 2.x on its own network
thread and driven by asyncio (socket callbacks, a window of acknowledgements, no future per message),
gmqtt, and ppg-stream's own codec (`stream/mqtt/publisher.py`, `stream/mqtt/subscriber.py`). Each case runs
in a fresh process, so CPU time is that client's alone; the broker's CPU comes from /proc. Mosquitto's
`set_tcp_nodelay` is compared for the publish case (false is its default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from tables import table  # noqa: E402

WINDOW = 256  # in flight at once, for every client
DEVICES = 5_000
RAW_PAYLOAD = bytes(range(192))
CLIENTS = ["aiomqtt", "paho-thread", "paho-asyncio", "gmqtt", "ppg-stream"]


def hr_messages(n: int) -> list[dict]:
    return [{"device": f"dev{i % DEVICES:04d}", "window": i, "t_end": 2.0 * i + 8, "ts": "2026-11-25T18:00:00.000Z",
             "bpm": 72.4, "confidence": 0.913, "latency_ms": 0.211, "late": False, "model": "ppg-student@1.1"} for i in range(n)]


# ---------------------------------------------------------------- workers (each in its own process)

def _quiet_logger():
    import logging

    logger = logging.getLogger("bench.quiet")
    logger.setLevel(logging.CRITICAL)
    return logger


async def publish_aiomqtt(port: int, prefix: str, messages: list[dict]) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=WINDOW, logger=_quiet_logger(),
                              socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]) as client:
        for i in range(0, len(messages), WINDOW):
            await asyncio.gather(*(client.publish(f"{prefix}/{m['device']}/hr", json.dumps(m), qos=1) for m in messages[i:i + WINDOW]))


def publish_paho_thread(port: int, prefix: str, messages: list[dict]) -> None:
    import paho.mqtt.client as mqtt

    window = threading.Semaphore(WINDOW)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(WINDOW)
    client.on_publish = lambda c, u, mid, rc, props: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    for m in messages:
        window.acquire()
        client.publish(f"{prefix}/{m['device']}/hr", json.dumps(m), qos=1)
    for _ in range(WINDOW):
        window.acquire()
    client.disconnect()
    client.loop_stop()


class PahoOnAsyncio:
    """paho-mqtt's socket driven by the event loop (what aiomqtt does inside, minus its future per message)."""

    def __init__(self, client) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.connected = asyncio.Event()
        client.on_socket_open = lambda c, u, sock: self.loop.add_reader(sock, c.loop_read)
        client.on_socket_close = lambda c, u, sock: self.loop.remove_reader(sock)
        client.on_socket_register_write = lambda c, u, sock: self.loop.add_writer(sock, c.loop_write)
        client.on_socket_unregister_write = lambda c, u, sock: self.loop.remove_writer(sock)
        client.on_connect = lambda *a: self.connected.set()

    async def connect(self, port: int) -> None:
        self.client.connect("127.0.0.1", port)
        self.misc = asyncio.create_task(self._misc())
        await self.connected.wait()

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1)
            self.client.loop_misc()


async def publish_paho_asyncio(port: int, prefix: str, messages: list[dict]) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(WINDOW)
    driver = PahoOnAsyncio(client)
    outstanding = 0
    room = asyncio.Event()

    def on_publish(c, u, mid, rc, props):
        nonlocal outstanding
        outstanding -= 1
        if outstanding <= WINDOW // 2:
            room.set()

    client.on_publish = on_publish
    await driver.connect(port)
    for m in messages:
        if outstanding >= WINDOW:
            room.clear()
            await room.wait()
        client.publish(f"{prefix}/{m['device']}/hr", json.dumps(m), qos=1)
        outstanding += 1
    while outstanding:
        room.clear()
        await room.wait()
    client.disconnect()
    driver.misc.cancel()


async def publish_gmqtt(port: int, prefix: str, messages: list[dict]) -> None:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    client = gmqtt.Client(f"bench-{uuid.uuid4().hex[:8]}")
    await client.connect("127.0.0.1", port, version=MQTTv311)
    storage = client._persistent_storage  # gmqtt has no acknowledgement callback: wait for its in-flight store to empty
    for i in range(0, len(messages), WINDOW):
        for m in messages[i:i + WINDOW]:
            client.publish(f"{prefix}/{m['device']}/hr", json.dumps(m), qos=1)
        await storage.wait_empty()
    await client.disconnect()


async def publish_ppg_stream(port: int, prefix: str, messages: list[dict]) -> None:
    from ppg_stream.stream.mqtt.publisher import MqttPublisher
    from ppg_stream.stream.mqtt.settings import BrokerSettings

    publisher = MqttPublisher(BrokerSettings("127.0.0.1", port), prefix, f"{prefix}/bench/status", outbox_size=len(messages) + 1,
                              max_inflight=WINDOW)
    await publisher.start()
    publisher.publish(messages)
    report = await publisher.close()
    assert report.delivered == len(messages), report


def run_publish_worker(client: str, port: int, n: int) -> dict:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    fn = {"aiomqtt": publish_aiomqtt, "paho-thread": publish_paho_thread, "paho-asyncio": publish_paho_asyncio,
          "gmqtt": publish_gmqtt, "ppg-stream": publish_ppg_stream}[client]
    warm, messages = hr_messages(500), hr_messages(n)

    def call(batch):
        result = fn(port, prefix, batch)
        if asyncio.iscoroutine(result):
            asyncio.run(result)

    call(warm)
    t, c = time.perf_counter(), time.process_time()
    call(messages)
    return {"n": n, "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c}


class Receipt:
    """Counts messages; records (wall, cpu) at the first and every 1000th so the idle tail is not measured."""

    def __init__(self, n: int) -> None:
        self.n, self.count, self.bytes = n, 0, 0
        self.first = self.last = (0.0, 0.0)
        self.last_count = 1
        self.done = threading.Event()

    def add(self, payload: bytes) -> None:
        self.count += 1
        self.bytes += len(payload)
        if self.count == 1:
            self.first = (time.perf_counter(), time.process_time())
        elif self.count % 1000 == 0 or self.count == self.n:
            self.last = (time.perf_counter(), time.process_time())
            self.last_count = self.count
            if self.count >= self.n:
                self.done.set()

    def result(self) -> dict:
        return {"n": self.n, "received": self.count, "measured": self.last_count - 1,
                "wall_s": self.last[0] - self.first[0], "cpu_s": self.last[1] - self.first[1]}


async def _until_done(receipt: Receipt, idle_s: float = 3.0) -> None:
    last, since = -1, time.monotonic()
    while not receipt.done.is_set():
        await asyncio.sleep(0.05)
        if receipt.count != last:
            last, since = receipt.count, time.monotonic()
        elif receipt.count and time.monotonic() - since > idle_s:
            return


def _ready() -> None:
    print("ready", flush=True)


async def receive_aiomqtt(port, topic, qos, receipt):
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, logger=_quiet_logger(), max_queued_incoming_messages=0) as client:
        await client.subscribe(topic, qos=qos)
        _ready()

        async def consume():
            async for message in client.messages:
                receipt.add(message.payload)

        task = asyncio.create_task(consume())
        await _until_done(receipt)
        task.cancel()


def receive_paho_thread(port, topic, qos, receipt):
    import paho.mqtt.client as mqtt

    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
    client.on_message = lambda c, u, m: receipt.add(m.payload)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(topic, qos)
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    _ready()
    asyncio.run(_until_done(receipt))
    client.loop_stop()


async def receive_paho_asyncio(port, topic, qos, receipt):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
    driver = PahoOnAsyncio(client)
    subscribed = asyncio.Event()
    client.on_message = lambda c, u, m: receipt.add(m.payload)
    client.on_subscribe = lambda *a: subscribed.set()
    await driver.connect(port)
    client.subscribe(topic, qos)
    await subscribed.wait()
    _ready()
    await _until_done(receipt)
    driver.misc.cancel()


async def receive_gmqtt(port, topic, qos, receipt):
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    subscribed = asyncio.Event()

    def on_message(client, topic, payload, qos, properties):
        receipt.add(payload)
        return 0

    client = gmqtt.Client(f"bench-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    await client.connect("127.0.0.1", port, version=MQTTv311)
    client.subscribe(topic, qos=qos)
    await subscribed.wait()
    _ready()
    await _until_done(receipt)


async def receive_ppg_stream(port, topic, qos, receipt):
    from ppg_stream.stream.mqtt.settings import BrokerSettings
    from ppg_stream.stream.mqtt.subscriber import MqttSubscriber

    subscriber = MqttSubscriber(BrokerSettings("127.0.0.1", port), topic, lambda t, p, r: receipt.add(p), qos=qos)
    await subscriber.start()
    _ready()
    await _until_done(receipt)
    await subscriber.close()


async def receive_ppg_stream_per_read(port, topic, qos, receipt):
    """As serve wires it: the messages of one socket read handed over in one call."""
    from ppg_stream.stream.mqtt.settings import BrokerSettings
    from ppg_stream.stream.mqtt.subscriber import MqttSubscriber

    def on_messages(messages, received):
        for message in messages:
            receipt.add(message.payload)
        return []

    subscriber = MqttSubscriber(BrokerSettings("127.0.0.1", port), topic, None, on_messages=on_messages, qos=qos)
    await subscriber.start()
    _ready()
    await _until_done(receipt)
    await subscriber.close()


async def service_worker(port: int, prefix: str, qos: int) -> dict:
    """The MQTT side of the coming `serve`: raw chunks in on <prefix>/+/raw, one HR message out per two chunks."""
    from ppg_stream.stream.mqtt.publisher import MqttPublisher
    from ppg_stream.stream.mqtt.settings import BrokerSettings
    from ppg_stream.stream.mqtt.subscriber import MqttSubscriber

    settings = BrokerSettings("127.0.0.1", port)
    publisher = MqttPublisher(settings, prefix, f"{prefix}/service/status", outbox_size=100_000)
    receipt = Receipt(1 << 62)
    batch: list[dict] = []

    def on_message(topic: str, payload: bytes, received: float) -> None:
        receipt.add(payload)
        if receipt.count % 2 == 0:
            batch.append({"device": topic.split("/", 2)[1], "window": receipt.count, "t_end": 8.0, "ts": "2026-11-25T18:00:00.000Z",
                          "bpm": 72.4, "confidence": 0.913, "latency_ms": 0.211, "late": False, "model": "ppg-student@1.1"})

    subscriber = MqttSubscriber(settings, f"{prefix}/+/raw", on_message, qos=qos)
    await publisher.start()
    await subscriber.start()
    _ready()
    t, c = time.perf_counter(), time.process_time()
    last, idle_since = -1, time.monotonic()
    while not (receipt.count and time.monotonic() - idle_since > 1.0):
        await asyncio.sleep(0.01)  # the pipeline's tick: hand over what was made since the last one
        if batch:
            publisher.publish(batch)
            batch = []
        if receipt.count != last:
            last, idle_since = receipt.count, time.monotonic()
    wall, cpu = time.perf_counter() - t - 1.0, time.process_time() - c
    await subscriber.close()
    report = await publisher.close()
    return {"received": receipt.count, "delivered": report.delivered, "lost_out": report.lost, "wall_s": wall, "cpu_s": cpu}


async def paced_generator(port: int, prefix: str, rate: int, seconds: float, qos: int) -> dict:
    """`rate` raw chunks/s from DEVICES devices for `seconds`, in 10 ms ticks (devices send on their own clocks)."""
    from ppg_stream.stream.mqtt.codec import encode_publish, encode_string
    from ppg_stream.stream.mqtt.connection import connect
    from ppg_stream.stream.mqtt.settings import BrokerSettings

    conn = await connect(BrokerSettings("127.0.0.1", port), f"gen-{uuid.uuid4().hex[:8]}", on_pubacks=lambda pids: None)
    topics = [encode_string(f"{prefix}/dev{i:04d}/raw") for i in range(DEVICES)]
    per_tick, ticks = rate // 100, int(seconds * 100)
    start = time.perf_counter()
    sent = 0
    for tick in range(ticks):
        conn.write(b"".join(encode_publish(topics[(sent + i) % DEVICES], RAW_PAYLOAD, qos, (sent + i) % 65535 + 1) for i in range(per_tick)))
        sent += per_tick
        await asyncio.sleep(max(0.0, start + (tick + 1) / 100 - time.perf_counter()))
    await asyncio.sleep(0.5)
    conn.disconnect()
    return {"sent": sent}


def run_receive_worker(client: str, port: int, n: int, topic: str, qos: int) -> dict:
    fn = {"aiomqtt": receive_aiomqtt, "paho-thread": receive_paho_thread, "paho-asyncio": receive_paho_asyncio,
          "gmqtt": receive_gmqtt, "ppg-stream": receive_ppg_stream, "ppg-stream per read": receive_ppg_stream_per_read}[client]
    receipt = Receipt(n)
    result = fn(port, topic, qos, receipt)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return receipt.result()


async def generate(port: int, prefix: str, n: int, qos: int) -> dict:
    """Load generator: n raw chunks from DEVICES devices as fast as the broker takes them (own codec, one process)."""
    from ppg_stream.stream.mqtt.codec import encode_publish, encode_string
    from ppg_stream.stream.mqtt.connection import connect
    from ppg_stream.stream.mqtt.settings import BrokerSettings

    acked = 0
    room = asyncio.Event()

    def on_pubacks(pids):
        nonlocal acked
        acked += len(pids)
        room.set()

    conn = await connect(BrokerSettings("127.0.0.1", port), f"gen-{uuid.uuid4().hex[:8]}", on_pubacks=on_pubacks)
    topics = [encode_string(f"{prefix}/dev{i:04d}/raw") for i in range(DEVICES)]
    t = time.perf_counter()
    sent = 0
    while sent < n:
        batch = min(WINDOW, n - sent)
        if qos:
            while sent - acked + batch > 4 * WINDOW:
                room.clear()
                await room.wait()
        conn.write(b"".join(encode_publish(topics[(sent + i) % DEVICES], RAW_PAYLOAD, qos, (sent + i) % 65535 + 1) for i in range(batch)))
        sent += batch
        while conn._transport.get_write_buffer_size() > 1 << 20:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)
    while qos and acked < n:
        room.clear()
        await room.wait()
    await asyncio.sleep(0.2)
    conn.disconnect()
    return {"sent": n, "wall_s": time.perf_counter() - t}


# ---------------------------------------------------------------- the parent: broker, cases, table

class Broker:
    def __init__(self, nodelay: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
        self.port = _free_port()
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay {'true' if nodelay else 'false'}\n"
                        "max_queued_messages 100000\n")  # the settings docs/broker.md gives for the service (default 1000 drops a QoS-1 flood)
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def publish_case(broker: Broker, client: str, n: int) -> dict:
    cpu0 = broker.cpu_s()
    proc = _worker("publish", client, str(broker.port), str(n))
    out, _ = proc.communicate(timeout=600)
    result = json.loads(out.strip().splitlines()[-1])
    result["broker_cpu_s"] = broker.cpu_s() - cpu0  # includes the 500-message warm-up: ~n/(n+500) of it is the run
    return result


def receive_case(broker: Broker, client: str, n: int, qos: int) -> dict:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    proc = _worker("receive", client, str(broker.port), str(n), f"{prefix}/+/raw", str(qos))
    assert proc.stdout.readline().strip() == "ready"
    cpu0 = broker.cpu_s()
    gen = _worker("generate", "-", str(broker.port), str(n), prefix, str(qos))
    gen.communicate(timeout=600)
    out, _ = proc.communicate(timeout=600)
    result = json.loads(out.strip().splitlines()[-1])
    result["broker_cpu_s"] = broker.cpu_s() - cpu0  # the generator's publishes and the deliveries to this client
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    parser.add_argument("--parts", default="abcd", help="which parts to run, e.g. b (default abcd)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, client, port, n, *rest = args.worker
        if kind == "publish":
            result = run_publish_worker(client, int(port), int(n))
        elif kind == "service":
            result = asyncio.run(service_worker(int(port), rest[0], int(rest[1])))
        elif kind == "paced":
            result = asyncio.run(paced_generator(int(port), rest[0], int(n), float(rest[1]), int(rest[2])))
        elif kind == "receive":
            result = run_receive_worker(client, int(port), int(n), rest[0], int(rest[1]))
        else:
            result = asyncio.run(generate(int(port), rest[0], int(n), int(rest[1])))
        print(json.dumps(result), flush=True)
        return
    if shutil.which("mosquitto") is None:
        sys.exit("bench_mqtt: needs mosquitto (apt-get install mosquitto)")
    n_pub, n_recv = (4_000, 10_000) if args.quick else (20_000, 50_000)
    print(f"MQTT client layer, {os.cpu_count()} cores; Mosquitto {_mosquitto_version()} started by this script "
          "(max_queued_messages 100000); "
          f"{WINDOW} in flight; HR JSON ~{len(json.dumps(hr_messages(1)[0]))} B; raw payload {len(RAW_PAYLOAD)} B")

    if "a" in args.parts:
        rows, base = [], None
        for nodelay in (True, False):
            broker = Broker(nodelay)
            try:
                for client in CLIENTS if nodelay else ["aiomqtt", "ppg-stream"]:
                    r = publish_case(broker, client, n_pub)
                    us = r["cpu_s"] / r["n"] * 1e6
                    base = base or (None if client != "aiomqtt" else us)
                    rows.append([f"{client}, set_tcp_nodelay {str(nodelay).lower()}", f"{r['n'] / r['wall_s']:,.0f}", f"{us:.1f}",
                                 f"{r['broker_cpu_s'] / (r['n'] + 500) * 1e6:.1f}", f"{r['wall_s'] / r['n'] * 1e6:.1f}",
                                 f"{base / us:.1f}x" if base else "-"])
            finally:
                broker.stop()
        table(f"(a) QoS-1 publish, {n_pub:,} HR messages to {DEVICES:,} topics, until all acknowledged",
              ["client", "msgs/s", "client CPU µs/msg", "broker CPU µs/msg", "wall µs/msg", "client CPU vs aiomqtt"], rows)

    if "b" in args.parts:
        rows, base = [], {}
        broker = Broker(True)
        try:
            for qos in (0, 1):
                for client in [*CLIENTS, "ppg-stream per read"]:
                    r = receive_case(broker, client, n_recv, qos)
                    us = r["cpu_s"] / max(r["measured"], 1) * 1e6
                    if client == "aiomqtt":
                        base[qos] = us
                    rate = r["measured"] / r["wall_s"] if r["wall_s"] > 0 else float("nan")
                    rows.append([f"{client}, QoS {qos}", f"{rate:,.0f}", f"{us:.1f}", f"{r['broker_cpu_s'] / n_recv * 1e6:.1f}",
                                 f"{n_recv - r['received']:,}", f"{base[qos] / us:.1f}x" if qos in base else "-"])
        finally:
            broker.stop()
        table(f"(b) receive, {n_recv:,} raw chunks of {len(RAW_PAYLOAD)} B from {DEVICES:,} devices on <prefix>/+/raw, flooded by another process",
              ["client", "msgs/s", "client CPU µs/msg", "broker CPU µs/msg", "lost", "client CPU vs aiomqtt"], rows)
        print("\nbroker CPU in (b) covers taking the generator's publishes and delivering them to the client.")

    if "c" in args.parts:
        seconds = 3.0 if args.quick else 10.0
        broker = Broker(True)
        try:
            rows = [goal_case(broker, rate, seconds, qos) for rate in (5_000, 10_000) for qos in (0, 1)]
        finally:
            broker.stop()
        table(f"(c) the MQTT side of the goal, {seconds:g} s: one process subscribing to raw chunks from {DEVICES:,} devices and publishing "
              "one HR message per two chunks; CPU in % of one core", ["load", "service process", "Mosquitto", "raw lost", "HR lost"], rows)

    if "d" in args.parts:
        broker = Broker(True)
        try:
            hours = 0.5 if args.quick else 2.0
            rows = pipeline_case(broker.port, hours, repeats=1 if args.quick else 3)
        finally:
            broker.stop()
        table(f"(d) replay at --speed max, student, {hours:g} h synthetic recording (best of {1 if args.quick else 3} by CPU)",
              ["configuration", "windows", "windows/s", "CPU µs/window"], rows)

def goal_case(broker: Broker, rate: int, seconds: float, qos: int) -> list[str]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    proc = _worker("service", "-", str(broker.port), "0", prefix, str(qos))
    assert proc.stdout.readline().strip() == "ready"
    cpu0 = broker.cpu_s()
    gen = _worker("paced", "-", str(broker.port), str(rate), prefix, str(seconds), str(qos))
    sent = json.loads(gen.communicate(timeout=600)[0].strip().splitlines()[-1])["sent"]
    out, _ = proc.communicate(timeout=600)
    broker_cpu = broker.cpu_s() - cpu0
    r = json.loads(out.strip().splitlines()[-1])
    return [f"{rate:,} chunks/s in (QoS {qos}), {rate // 2:,} HR/s out (QoS 1)", f"{100 * r['cpu_s'] / r['wall_s']:.1f} %",
            f"{100 * broker_cpu / r['wall_s']:.1f} %", f"{sent - r['received']:,} of {sent:,}", f"{r['lost_out']:,} of {r['delivered'] + r['lost_out']:,}"]


def pipeline_case(port: int, hours: float, repeats: int) -> list[list[str]]:
    """Replay at --speed max (student, 32 s chunks) without MQTT and publishing every window, interleaved."""
    from ppg_stream.replay.recording import Recording, uniform_times
    from ppg_stream.stream.sources.replay import ReplaySource
    from ppg_stream.replay.synthetic import synthesize
    from ppg_stream.stream.core.engine import InferenceEngine
    from ppg_stream.stream.mqtt.publisher import MqttPublisher
    from ppg_stream.stream.mqtt.settings import BrokerSettings
    from ppg_stream.stream.runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
    from ppg_stream.stream.runtime.source_pump import pump

    syn = synthesize(hours * 3600, seed=1)
    rec = Recording("bench", syn.ppg[:, None], uniform_times(len(syn.ppg), syn.fs_ppg), syn.fs_ppg,
                    syn.acc_g, uniform_times(len(syn.acc_g), syn.fs_acc), syn.fs_acc, syn.labels_bpm)

    async def once(mqtt: bool) -> tuple[int, float, float]:
        engine = InferenceEngine("student")
        source = ReplaySource(rec, speed=None, chunk_s=32.0)
        warm_up_runtime(engine, source.rates)
        publishers = []
        if mqtt:
            publisher = MqttPublisher(BrokerSettings("127.0.0.1", port), "bench", "bench/bench/status", outbox_size=1_000_000)
            publishers.append(publisher)
            await publisher.start()
            await asyncio.wait_for(publisher.connected.wait(), 5)
        runtime = Runtime(engine, publishers, RuntimeConfig(speed=None))
        t, c = time.perf_counter(), time.process_time()
        task = asyncio.create_task(runtime.run())
        await pump(runtime, source, "bench", wait=True)
        runtime.stop()
        await task
        windows = runtime.summary(time.perf_counter() - t).windows
        for publisher in publishers:
            report = await publisher.close()
            assert report.delivered == windows, report
        return windows, time.perf_counter() - t, time.process_time() - c

    best: dict[bool, tuple[int, float, float]] = {}
    for _ in range(repeats):
        for mqtt in (False, True):
            result = asyncio.run(once(mqtt))
            if mqtt not in best or result[2] < best[mqtt][2]:
                best[mqtt] = result
    return [["no MQTT" if not mqtt else "MQTT QoS 1 to Mosquitto, incl. the final flush", f"{w:,}", f"{w / wall:,.0f}", f"{cpu / w * 1e6:.0f}"]
            for mqtt, (w, wall, cpu) in best.items()]


def _mosquitto_version() -> str:
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    return out.split("version", 1)[1].split()[0] if "version" in out else "?"


if __name__ == "__main__":
    main()
