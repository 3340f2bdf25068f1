"""Broker URLs, credentials and TLS options: what a user types, what comes out, and that a password
never shows anywhere."""

import argparse

import pytest

from ppg_stream.stream.mqtt.settings import (
    PASSWORD_ENV,
    USERNAME_ENV,
    BrokerSettings,
    BrokerUrlError,
    add_broker_arguments,
    broker_settings_from_args,
    parse_broker_url,
)
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mqtt://broker.local", BrokerSettings("broker.local", 1883)),
        ("mqtt://10.0.0.5:1884", BrokerSettings("10.0.0.5", 1884)),
        ("broker.local:1999", BrokerSettings("broker.local", 1999)),
        ("mqtts://broker.local", BrokerSettings("broker.local", 8883, tls=True)),
        ("mqtts://[::1]:8884", BrokerSettings("::1", 8884, tls=True)),
        ("mqtt://[::1]", BrokerSettings("::1", 1883)),
        ("MQTTS://ann:s%40cret%3A1@h:9000", BrokerSettings("h", 9000, tls=True, username="ann", password="s@cret:1")),
        ("mqtt://ann@h", BrokerSettings("h", 1883, username="ann")),
    ],
)
def test_urls(url, expected):
    assert parse_broker_url(url, env={}) == expected


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("mqtt://[::1", "IPv6 hosts as [::1]"),
        ("http://x", "expected mqtt://HOST[:PORT]"),
        ("mqtt://", "expected mqtt://HOST[:PORT]"),
        ("mqtt://h/path", "expected mqtt://HOST[:PORT]"),
        ("mqtt://h:99999", "port must be a number 1-65535"),
        ("mqtt://h:0", "port must be a number 1-65535"),
        ("mqtts://u:hunter2@h:x", "port must be a number 1-65535"),
    ],
)
def test_bad_urls_say_what_is_expected_without_the_password(url, fragment):
    with pytest.raises(BrokerUrlError) as e:
        parse_broker_url(url, env={})
    assert fragment in str(e.value)
    assert "hunter2" not in str(e.value) and "\n" not in str(e.value)


def test_credentials_from_the_environment_unless_the_url_has_them():
    env = {USERNAME_ENV: "svc", PASSWORD_ENV: "from-env"}
    assert parse_broker_url("mqtts://h", env) == BrokerSettings("h", 8883, tls=True, username="svc", password="from-env")
    assert parse_broker_url("mqtts://ann:x@h", env).username == "ann"
    assert parse_broker_url("mqtts://ann:x@h", env).password == "x"
    with pytest.raises(BrokerUrlError, match="no user name"):
        parse_broker_url("mqtt://h", {PASSWORD_ENV: "lonely"})


def test_the_password_is_never_shown():
    settings = parse_broker_url("mqtts://ann:hunter2@h:8884", env={})
    for shown in (repr(settings), str(settings), settings.url):
        assert "hunter2" not in shown
    assert settings.url == "mqtts://h:8884"
    assert BrokerSettings("::1", 1883).url == "mqtt://[::1]:1883"


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_broker_arguments(parser)
    return parser.parse_args(list(argv))


def test_tls_options_need_an_mqtts_broker(tmp_path):
    for argv, fragment in [
        (["--broker", "mqtt://h", "--ca-file", "ca.pem"], "need an mqtts:// broker"),
        (["--ca-file", "ca.pem"], "need --broker mqtts://"),
        (["--broker", "embedded", "--cert", "c.pem"], "need --broker mqtts://"),
        (["--broker", "mqtts://h", "--key", "k.pem"], "--key needs --cert"),
        (["--broker", "mqtts://h", "--ca-file", str(tmp_path / "nope.pem")], "cannot load CA certificates"),
    ]:
        with pytest.raises(BrokerUrlError, match=fragment.replace("+", r"\+")):
            broker_settings_from_args(_args(*argv), env={})
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(BrokerUrlError, match="cannot load the client certificate"):
        broker_settings_from_args(_args("--broker", "mqtts://h", "--cert", str(tmp_path / "junk.pem")), env={})
    assert broker_settings_from_args(_args("--broker", "embedded:1999"), env={}) is None
    assert broker_settings_from_args(_args(), env={}) is None


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--broker", "mqtt://[::1"], "IPv6 hosts as [::1]"),
        (["--broker", "mqtts://h", "--ca-file", "/nonexistent/ca.pem"], "--ca-file /nonexistent/ca.pem: cannot load CA certificates"),
        (["--broker", "mqtt://h", "--cert", "c.pem"], "need an mqtts:// broker"),
    ],
)
def test_cli_one_line_errors(args, fragment):
    result = run_cli("--demo", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppg-stream: error: ") and fragment in lines[0], result.stderr


async def test_a_name_that_does_not_exist_is_a_mistake_and_an_unreachable_resolver_an_outage():
    import socket

    from ppg_stream.stream.mqtt.diagnose import settings_mistake

    settings = BrokerSettings("brokr.example", 1883)
    mistake = await settings_mistake(settings, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert str(mistake) == ("mqtt://brokr.example:1883: the host name 'brokr.example' does not resolve (Name or service not known); "
                            "check the host in --broker")
    assert await settings_mistake(settings, socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")) is None
    assert await settings_mistake(settings, ConnectionRefusedError(111, "Connection refused")) is None  # a broker that is down


@pytest.mark.network
async def test_tls_to_a_plain_listener_is_told_apart_from_an_outage(mosquitto_1883):
    from ppg_stream.stream.mqtt.diagnose import settings_mistake, speaks_plain_mqtt, speaks_tls
    from tests.conftest import free_port

    host, port = mosquitto_1883
    assert await speaks_plain_mqtt(host, port) and not await speaks_tls(host, port)
    mistake = await settings_mistake(BrokerSettings(host, port, tls=True), ConnectionResetError(104, "Connection reset by peer"))
    assert "answers plain MQTT, not TLS: use --broker mqtt://127.0.0.1:1883" in str(mistake)
    # plain MQTT to a plain listener that closed on us is no mistake of the settings: an outage
    assert await settings_mistake(BrokerSettings(host, port), ConnectionResetError(104, "Connection reset by peer")) is None
    nobody = free_port()
    assert not await speaks_plain_mqtt(host, nobody) and not await speaks_tls(host, nobody)
