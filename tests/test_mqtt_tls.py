"""TLS and authentication against real Mosquitto processes started here: a CA, server and client
certificates made in the test with the `openssl` CLI, a password file made with `mosquitto_passwd`.
Refused credentials and certificates that do not verify are one line and exit 2, never retried."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ppg_stream.stream.runtime.backoff import Backoff
from ppg_stream.stream.mqtt.connection import MqttConnectionError, MqttFatalError, connect
from ppg_stream.stream.mqtt.publisher import MqttPublisher
from ppg_stream.stream.mqtt.settings import PASSWORD_ENV, USERNAME_ENV, BrokerSettings
from ppg_stream.stream.mqtt.subscriber import MqttSubscriber
from tests.conftest import ROOT, free_port, need_broker_or_fail, wait_port

pytestmark = [pytest.mark.network, pytest.mark.slow]

USER, PASSWORD = "wrist-gateway", "c0rrect-h0rse"


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here
    passwords: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(cwd: Path, name: str, subject: str, ca: str, extensions: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject, cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="module")
def pki():
    for tool in ("mosquitto", "openssl", "mosquitto_passwd"):
        if shutil.which(tool) is None:
            need_broker_or_fail(f"{tool} is not installed")
    # readable by the mosquitto user that the broker drops to when started as root
    d = Path(tempfile.mkdtemp(prefix="ppg-stream-tls-"))
    d.chmod(0o755)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=ppg-stream test {ca}", cwd=d)
    _signed(d, "server", "/CN=localhost", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed(d, "client", "/CN=gateway-1", "ca", "extendedKeyUsage=clientAuth\n")
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(d / "passwd"), USER, PASSWORD], check=True, capture_output=True)
    for f in d.iterdir():
        f.chmod(0o644)
    yield Pki(d, d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key", d / "other-ca.pem", d / "passwd")
    shutil.rmtree(d, ignore_errors=True)


class TlsMosquitto:
    """Mosquitto with one TLS listener: password-protected, or requiring a client certificate."""

    def __init__(self, pki: Pki, client_certificates: bool) -> None:
        self.port = free_port()
        self.conf = pki.dir / f"mosquitto-{self.port}.conf"
        auth = ("require_certificate true\nallow_anonymous true\n" if client_certificates
                else f"require_certificate false\nallow_anonymous false\npassword_file {pki.passwords}\n")
        self.conf.write_text(f"per_listener_settings true\nlistener {self.port} 127.0.0.1\ncafile {pki.ca}\n"
                             f"certfile {pki.server_cert}\nkeyfile {pki.server_key}\n{auth}")
        self.conf.chmod(0o644)
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def password_broker(pki):
    broker = TlsMosquitto(pki, client_certificates=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def certificate_broker(pki):
    broker = TlsMosquitto(pki, client_certificates=True)
    yield broker
    broker.stop()


async def _run_cli(*args: str, env: dict | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        os.sys.executable, "-m", "ppg_stream.stream.cli", *args, cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, stderr.decode()


async def _subscribe(settings: BrokerSettings, topic: str) -> tuple[MqttSubscriber, list[tuple[str, bytes]]]:
    got: list[tuple[str, bytes]] = []
    subscriber = MqttSubscriber(settings, topic, lambda t, p, r: got.append((t, p)), qos=1)
    await subscriber.start()
    return subscriber, got


async def _replay_through(broker_url: str, synthetic, *extra: str, env: dict | None = None, watch: BrokerSettings) -> tuple[int, str, list]:
    prefix = f"tls-{uuid.uuid4().hex[:8]}"
    subscriber, got = await _subscribe(watch, f"{prefix}/#")
    try:
        rc, stderr = await _run_cli("--replay", str(synthetic.path), "--speed", "max", "--topic-prefix", prefix, "--device-id", "w1",
                                    "--broker", broker_url, *extra, "--flush-timeout", "5", env=env)
        for _ in range(100):
            if sum(t.endswith("/hr") for t, _ in got) >= synthetic.n_windows:
                break
            await asyncio.sleep(0.05)
    finally:
        await subscriber.close()
    return rc, stderr, got


def _one_line_error(rc: int, stderr: str, *fragments: str) -> str:
    lines = stderr.strip().splitlines()
    assert rc == 2, stderr
    assert lines[-1].startswith("ppg-stream: error: ") and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


async def test_tls_with_password_in_the_url_delivers_every_window(pki, password_broker, synthetic_60s):
    watch = BrokerSettings("127.0.0.1", password_broker.port, tls=True, ca_file=pki.ca, username=USER, password=PASSWORD)
    url = f"mqtts://{USER}:{PASSWORD}@127.0.0.1:{password_broker.port}"
    rc, stderr, got = await _replay_through(url, synthetic_60s, "--ca-file", str(pki.ca), "--log-json", watch=watch)
    assert rc == 0, stderr
    windows = {int(p.split(b'"window": ')[1].split(b",")[0]) for t, p in got if t.endswith("/w1/hr")}
    assert windows == set(range(synthetic_60s.n_windows))
    assert [p for t, p in got if t.endswith("/w1/status")][-1] == b"offline"
    assert PASSWORD not in stderr, stderr


async def test_credentials_from_the_environment(pki, password_broker, synthetic_60s):
    watch = BrokerSettings("127.0.0.1", password_broker.port, tls=True, ca_file=pki.ca, username=USER, password=PASSWORD)
    rc, stderr, got = await _replay_through(f"mqtts://127.0.0.1:{password_broker.port}", synthetic_60s, "--ca-file", str(pki.ca),
                                            env={USERNAME_ENV: USER, PASSWORD_ENV: PASSWORD}, watch=watch)
    assert rc == 0, stderr
    assert sum(t.endswith("/hr") for t, _ in got) >= synthetic_60s.n_windows


@pytest.mark.parametrize("userinfo", [f"{USER}:wrong-password", ""])
async def test_refused_credentials_are_one_line_and_exit_2(pki, password_broker, synthetic_60s, userinfo):
    url = f"mqtts://{userinfo + '@' if userinfo else ''}127.0.0.1:{password_broker.port}"
    rc, stderr = await _run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--broker", url, "--ca-file", str(pki.ca))
    line = _one_line_error(rc, stderr, "refused the connection")
    assert "not authorized" in line or "bad user name or password" in line
    assert "wrong-password" not in stderr  # never echoed
    assert "retrying" not in stderr and len(stderr.strip().splitlines()) == 1  # the error alone: before the warm-up, no outage


async def test_a_certificate_that_does_not_verify_is_one_line_and_exit_2(pki, password_broker, synthetic_60s):
    url = f"mqtts://{USER}:{PASSWORD}@127.0.0.1:{password_broker.port}"
    rc, stderr = await _run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--broker", url, "--ca-file", str(pki.other_ca))
    _one_line_error(rc, stderr, "did not verify", "--ca-file")
    assert "retrying" not in stderr


async def test_client_certificate(pki, certificate_broker, synthetic_60s):
    watch = BrokerSettings("127.0.0.1", certificate_broker.port, tls=True, ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
    url = f"mqtts://127.0.0.1:{certificate_broker.port}"
    rc, stderr, got = await _replay_through(url, synthetic_60s, "--ca-file", str(pki.ca), "--cert", str(pki.client_cert),
                                            "--key", str(pki.client_key), watch=watch)
    assert rc == 0, stderr
    assert sum(t.endswith("/hr") for t, _ in got) >= synthetic_60s.n_windows
    rc, stderr = await _run_cli("--replay", str(synthetic_60s.path), "--speed", "max", "--broker", url, "--ca-file", str(pki.ca))
    _one_line_error(rc, stderr, "TLS", "client certificate")


async def test_a_missing_client_certificate_is_always_a_refusal_never_an_outage(pki, certificate_broker):
    """TLS 1.3 refuses a missing certificate after the client's handshake is done; CONNECT written before that
    verdict raced the refusal's alert with a reset (an outage, retried, 1-11 of 60 attempts here)."""
    without = BrokerSettings("127.0.0.1", certificate_broker.port, tls=True, ca_file=pki.ca)
    outages = []
    for attempt in range(100):
        try:
            (await connect(without, f"no-cert-{attempt}")).disconnect()
            pytest.fail("the broker accepted a client without a certificate")
        except MqttFatalError as e:
            assert "certificate required" in str(e)
        except (MqttConnectionError, OSError) as e:
            outages.append(str(e))
    assert not outages, f"{len(outages)} of 100 attempts looked like an outage: {outages[0]}"
    with_cert = BrokerSettings("127.0.0.1", certificate_broker.port, tls=True, ca_file=pki.ca,
                               cert_file=pki.client_cert, key_file=pki.client_key)
    for attempt in range(10):
        (await connect(with_cert, f"cert-{attempt}")).disconnect()


async def test_subscriber_refused_credentials_raise_instead_of_retrying(pki, password_broker):
    settings = BrokerSettings("127.0.0.1", password_broker.port, tls=True, ca_file=pki.ca, username=USER, password="nope")
    subscriber = MqttSubscriber(settings, "x/+/raw", lambda *a: None)
    with pytest.raises(MqttFatalError, match="refused the connection"):
        await asyncio.wait_for(subscriber.start(), 15)
    assert subscriber.reconnects == 0


async def test_credentials_revoked_mid_run_stop_the_retries_and_close_raises(pki):
    """The broker restarts with a password file that no longer has our user: an operator's decision, not an outage."""
    broker = TlsMosquitto(pki, client_certificates=False)
    try:
        settings = BrokerSettings("127.0.0.1", broker.port, tls=True, ca_file=pki.ca, username=USER, password=PASSWORD)
        publisher = MqttPublisher(settings, "rev", "rev/svc/status", flush_timeout_s=5,
                                  reconnect=Backoff(start_s=0.1, factor=2.0, max_s=0.5, jitter=0.0))
        await publisher.start()
        publisher.publish([{"device": "d", "window": 0, "bpm": 70.0}])
        broker.stop()
        other = pki.dir / "passwd-other"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(other), "someone-else", "x"], check=True, capture_output=True)
        other.chmod(0o644)
        broker.conf.write_text(broker.conf.read_text().replace(str(pki.passwords), str(other)))
        broker.start()
        await asyncio.wait_for(publisher.failed.wait(), 15)
        assert "not authorized" in str(publisher.fatal_error) or "bad user name" in str(publisher.fatal_error)
        reconnects = publisher.reconnects
        await asyncio.sleep(1.0)
        assert publisher.reconnects == reconnects  # no more attempts
        with pytest.raises(MqttFatalError):
            await publisher.close()
    finally:
        broker.stop()


# ---- mistakes in --broker: one line at once, for every command -------------------------------------------------
NO_SUCH_HOST = "no-such-host.invalid"  # .invalid never resolves (RFC 2606)


def _resolver_says_no_such_name() -> bool:
    try:
        socket.getaddrinfo(NO_SUCH_HOST, 1883)
    except socket.gaierror as e:
        return e.errno == socket.EAI_NONAME
    return False


COMMANDS = {
    "replay": lambda syn: ["--replay", str(syn.path), "--speed", "max"],
    "serve": lambda syn: ["serve"],
    "dashboard": lambda syn: ["dashboard", "--port", "0"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("mistake", ["unresolvable host", "TLS to a plain port", "plain MQTT to a TLS port"])
async def test_a_mistake_in_the_broker_url_is_one_line_at_once(pki, password_broker, mosquitto_1883, synthetic_60s, command, mistake):
    """These were retried as outages: a replay ended ~24 s later with "N not acknowledged", serve and the
    dashboard retried forever. Now each is the one line a user needs, before the warm-up, not retried."""
    if mistake == "unresolvable host":
        if not _resolver_says_no_such_name():
            pytest.skip(f"this machine's resolver gives no definite answer for {NO_SUCH_HOST} (no DNS): nothing to tell apart")
        broker, expected = [f"mqtt://{NO_SUCH_HOST}:1883"], f"the host name '{NO_SUCH_HOST}' does not resolve"
    elif mistake == "TLS to a plain port":
        broker, expected = [f"mqtts://127.0.0.1:{mosquitto_1883[1]}", "--ca-file", str(pki.ca)], "answers plain MQTT, not TLS: use --broker mqtt://127.0.0.1:1883"
    else:
        broker, expected = [f"mqtt://127.0.0.1:{password_broker.port}"], f"is a TLS listener: use --broker mqtts://127.0.0.1:{password_broker.port}"
    rc, stderr = await _run_cli(*COMMANDS[command](synthetic_60s), "--broker", *broker)
    _one_line_error(rc, stderr, expected)
    assert len(stderr.strip().splitlines()) == 1, stderr  # nothing before it: no warm-up, no retry, no dashboard URL


@pytest.mark.parametrize("credentials, ca, expected", [
    (f"{USER}:wrong-password@", "ca", "refused the connection with the user name and password given"),
    (f"{USER}:{PASSWORD}@", "other_ca", "did not verify"),
])
async def test_the_dashboard_refused_by_its_broker_is_one_line_not_a_page_that_never_fills(pki, password_broker, credentials, ca, expected):
    rc, stderr = await _run_cli("dashboard", "--port", "0", "--broker", f"mqtts://{credentials}127.0.0.1:{password_broker.port}",
                                "--ca-file", str(getattr(pki, ca)))
    _one_line_error(rc, stderr, expected)
    assert len(stderr.strip().splitlines()) == 1 and "wrong-password" not in stderr, stderr
