"""Where the MQTT broker is and how to authenticate: `mqtt://` or `mqtts://[user[:password]@]host[:port]`,
`--ca-file`/`--cert`/`--key` for TLS, credentials from the URL or the environment.

Credentials never appear in `repr`, logs or error messages: only `BrokerSettings.url` (scheme, host,
port) is ever shown.
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
PORTS = {"mqtt": DEFAULT_PORT, "tcp": DEFAULT_PORT, "mqtts": 8883, "ssl": 8883}
TLS_SCHEMES = frozenset({"mqtts", "ssl"})
USERNAME_ENV = "PPG_STREAM_MQTT_USERNAME"
PASSWORD_ENV = "PPG_STREAM_MQTT_PASSWORD"
EXPECTED = "expected mqtt://HOST[:PORT] or mqtts://[USER[:PASSWORD]@]HOST[:PORT]"


class BrokerUrlError(ValueError):
    """A broker URL or TLS option the user got wrong (one line, exit 2)."""


@dataclass(frozen=True)
class BrokerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """What logs may show: no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying client context (the system's CAs unless `ca_file`), with the client certificate if any."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as e:
            raise BrokerUrlError(f"--ca-file {self.ca_file}: cannot load CA certificates: {_reason(e)}") from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
            except (OSError, ssl.SSLError) as e:
                raise BrokerUrlError(f"--cert {self.cert_file}: cannot load the client certificate/key: {_reason(e)}") from None
        return context


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e)


def _redacted(url: str) -> str:
    """The URL as the user typed it, minus any password, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{hostpart}" if ":" in userinfo else url


def parse_broker_url(url: str, env: Mapping[str, str] | None = None) -> BrokerSettings:
    """`mqtt://host[:port]`, `mqtts://user:pass@host[:port]`, `[::1]:1883` or `host[:port]` → settings.

    User name and password come from the URL (percent-decoded), else from PPG_STREAM_MQTT_USERNAME /
    PPG_STREAM_MQTT_PASSWORD in `env`.
    """
    env = os.environ if env is None else env
    shown = _redacted(url)
    try:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        host, port = parts.hostname, parts.port
    except ValueError as e:  # unbalanced [ ] of an IPv6 host, or a port that is not a number
        if "port" in str(e).lower():
            raise BrokerUrlError(f"--broker {shown!r}: port must be a number 1-65535") from None
        raise BrokerUrlError(f"--broker {shown!r}: {EXPECTED} (IPv6 hosts as [::1])") from None
    scheme = parts.scheme.lower()
    if scheme not in PORTS or not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerUrlError(f"--broker {shown!r}: {EXPECTED}")
    if port == 0:
        raise BrokerUrlError(f"--broker {shown!r}: port must be a number 1-65535")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is None:
        username = env.get(USERNAME_ENV) or None
        password = env.get(PASSWORD_ENV) if username is not None else None
        if username is None and env.get(PASSWORD_ENV):
            raise BrokerUrlError(f"{PASSWORD_ENV} is set but no user name is ({USERNAME_ENV} or USER@ in --broker): MQTT sends a password only with a user name")
    return BrokerSettings(host=host, port=port or PORTS[scheme], tls=scheme in TLS_SCHEMES, username=username, password=password)


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="URL", help="mqtt://HOST[:PORT] or mqtts://[USER[:PASSWORD]@]HOST[:PORT] (TLS, default port 8883), "
                        f"or 'embedded[:PORT]' to start the built-in anonymous broker on loopback (default: auto). Credentials may also come from {USERNAME_ENV} and {PASSWORD_ENV}")
    parser.add_argument("--ca-file", type=Path, metavar="PEM", help="mqtts: CA certificate(s) to verify the broker with (default: the system's)")
    parser.add_argument("--cert", type=Path, metavar="PEM", help="mqtts: client certificate, for brokers that require one")
    parser.add_argument("--key", type=Path, metavar="PEM", help="mqtts: the client certificate's private key (if not inside --cert)")


def broker_settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> BrokerSettings | None:
    """Settings for an explicit `--broker URL`; None when the caller chooses (no --broker, or 'embedded[:PORT]').

    TLS files are loaded here, so a missing or unreadable one is a usage error before anything runs.
    """
    tls_options = [f"--{name.replace('_', '-')}" for name in ("ca_file", "cert", "key") if getattr(args, name, None) is not None]
    if args.broker is None or args.broker.startswith("embedded"):
        if tls_options:
            raise BrokerUrlError(f"{', '.join(tls_options)} need --broker mqtts://HOST[:PORT] (the embedded broker is plain MQTT on loopback)")
        return None
    settings = parse_broker_url(args.broker, env)
    if tls_options and not settings.tls:
        raise BrokerUrlError(f"{', '.join(tls_options)} need an mqtts:// broker, not {settings.url}")
    if args.key is not None and args.cert is None:
        raise BrokerUrlError("--key needs --cert (the client certificate it belongs to)")
    settings = replace(settings, ca_file=args.ca_file, cert_file=args.cert, key_file=args.key)
    settings.ssl_context()  # fail now on a missing file or a bad PEM
    return settings
