"""Real nats-server processes on loopback for the scale-out tests: a JetStream cluster of N nodes on free
ports, with the partition mapping for some topic prefixes and optionally MQTT listeners; nodes are
started and stopped by pid, like an operator would (SIGTERM to stop, SIGKILL to crash)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ppg_stream.stream.nats.subjects import mapping
from tests.conftest import free_port, port_open, wait_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def nats_server_available() -> bool:
    return os.path.exists(NATS_SERVER)


class NatsCluster:
    def __init__(self, nodes: int, prefixes: list[str], partitions: int, mqtt: bool = False) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="ppg-stream-nats-"))
        self.n = nodes
        self.prefixes = list(prefixes)
        self.partitions = partitions
        self.client_ports = [free_port() for _ in range(nodes)]
        self.route_ports = [free_port() for _ in range(nodes)]
        self.mqtt_ports = [free_port() for _ in range(nodes)] if mqtt else []
        self.procs: list[subprocess.Popen | None] = [None] * nodes
        for i in range(nodes):
            (self.workdir / f"n{i}.conf").write_text(self._config(i))

    def _config(self, i: int) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        maps = "\n".join(f'  "{src}": "{dst}"' for src, dst in (mapping(prefix, self.partitions) for prefix in self.prefixes))
        lines = [
            f"server_name: n{i}",
            f"listen: 127.0.0.1:{self.client_ports[i]}",
            f'jetstream {{ store_dir: "{self.workdir}/js{i}" }}',
            f"mappings {{\n{maps}\n}}",
        ]
        if self.n > 1:
            lines.append(f"cluster {{ name: ppgtest, listen: 127.0.0.1:{self.route_ports[i]}, routes: [{routes}] }}")
        if self.mqtt_ports:
            lines.append(f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]} }}")
        return "\n".join(lines) + "\n"

    def url(self, i: int) -> str:
        return f"nats://127.0.0.1:{self.client_ports[i]}"

    def urls(self, first: int = 0) -> str:
        """Every node, `first` first (a client connects there and fails over to the others)."""
        order = [first] + [i for i in range(self.n) if i != first]
        return ",".join(self.url(i) for i in order)

    def start_node(self, i: int) -> None:
        log = open(self.workdir / f"n{i}.log", "ab")
        self.procs[i] = subprocess.Popen([NATS_SERVER, "-c", str(self.workdir / f"n{i}.conf")], stdout=log, stderr=log)
        log.close()
        wait_port(self.client_ports[i])

    def stop_node(self, i: int, sig: int = signal.SIGTERM) -> None:
        proc = self.procs[i]
        if proc is None:
            return
        proc.send_signal(sig)
        proc.wait(timeout=30)
        self.procs[i] = None
        deadline = time.monotonic() + 10
        while port_open(self.client_ports[i]) and time.monotonic() < deadline:
            time.sleep(0.05)

    def start(self) -> "NatsCluster":
        try:
            for i in range(self.n):
                self.start_node(i)
            asyncio.run(self.wait_ready())
        except BaseException:
            self.stop()
            raise
        return self

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until JetStream answers (a meta leader was elected)."""
        import nats

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                nc = await nats.connect(self.urls().split(","), connect_timeout=2, max_reconnect_attempts=0)
                try:
                    await nc.jetstream(timeout=2).account_info()
                    return
                finally:
                    await nc.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JetStream not ready after {timeout_s} s (logs in {self.workdir})")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        for i in range(self.n):
            if self.procs[i] is not None:
                self.procs[i].terminate()
        for i in range(self.n):
            if self.procs[i] is not None:
                try:
                    self.procs[i].wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.procs[i].kill()
                    self.procs[i].wait()
                self.procs[i] = None
        shutil.rmtree(self.workdir, ignore_errors=True)
