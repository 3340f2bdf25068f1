"""The one composition root: a command's options are read once into a `RunConfig`, and from it come
the engine (warmed up), the outputs (MQTT — the broker already there or an embedded one —, stdout,
the dashboard, Home Assistant), the raw-chunk target of a gateway, and the one runtime. Commands only
choose their sources and sinks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

import structlog

from .options import UsageError, embedded_port
from ..core.chunk import ACC, PPG
from ..core.engine import InferenceEngine
from ..core.message import service_status_topic, status_topic
from ..mqtt.embedded_broker import EmbeddedBroker, broker_answers
from ..mqtt.publisher import DeliveryReport, MqttPublisher
from ..mqtt.settings import DEFAULT_HOST, DEFAULT_PORT, BrokerSettings, broker_settings_from_args
from ..runtime.pipeline import Runtime, RuntimeConfig, warm_up_runtime
from ..runtime.publisher import Publisher, StdoutPublisher, broadcast_status

log = structlog.get_logger("ppg_stream")

# The rates the kernels are compiled with before a live source connects: any will do (Numba
# specialises on types, not rates); a replay warms up with its recording's own rates.
WARM_UP_RATES = {PPG: 64.0, ACC: 32.0}


@dataclass(frozen=True)
class OutputConfig:
    prefix: str
    mqtt: bool  # publish HR and statuses over MQTT
    broker: str | None  # --broker as given: a URL, 'embedded[:PORT]', or None (the one on 127.0.0.1:1883, else embedded)
    stdout: bool = False
    outbox: int = 10_000
    flush_timeout_s: float = 10.0
    dashboard_port: int | None = None
    ha_prefix: str | None = None
    ha_remove_on_leave: bool = False


@dataclass(frozen=True)
class RunConfig:
    """Everything the composition root needs, read off the command line in one place."""

    model: str | None  # None: no model runs in this process (a gateway that only forwards raw chunks)
    runtime: RuntimeConfig
    outputs: OutputConfig
    args: argparse.Namespace = field(repr=False)  # the TLS files and credentials, read when the broker is chosen


def run_config(args: argparse.Namespace, *, speed: float | None, model_runs: bool = True, mqtt: bool | None = None) -> RunConfig:
    """`speed`: stream seconds per wall second (None: as fast as possible, never dropping);
    `mqtt`: whether HR goes over MQTT, when not simply the absence of --no-mqtt."""
    defaults = RuntimeConfig()
    runtime = RuntimeConfig(
        budget_ms=args.budget_ms, speed=speed, tracking=not args.no_tracking, beat_refinement=not args.no_beat_refinement,
        cues=not getattr(args, "no_cues", False), min_confidence=getattr(args, "min_confidence", defaults.min_confidence),
        max_devices=getattr(args, "max_devices", defaults.max_devices), queue_chunks=getattr(args, "queue_chunks", defaults.queue_chunks),
        max_backlog_s=getattr(args, "max_backlog_s", defaults.max_backlog_s),
    )
    outputs = OutputConfig(
        prefix=args.topic_prefix, mqtt=not args.no_mqtt if mqtt is None else mqtt, broker=args.broker, stdout=args.stdout,
        outbox=args.outbox, flush_timeout_s=args.flush_timeout, dashboard_port=getattr(args, "dashboard", None),
        ha_prefix=getattr(args, "ha_discovery", None), ha_remove_on_leave=getattr(args, "ha_remove_on_leave", False),
    )
    return RunConfig(args.model if model_runs else None, runtime, outputs, args)


def hr_over_mqtt(args: argparse.Namespace) -> bool:
    """A gateway into NATS that runs no model publishes over MQTT only when a broker is named."""
    if args.nats is not None and args.publish_raw == "only" and args.broker is None:
        return False
    return not args.no_mqtt


def open_engine(config: RunConfig) -> InferenceEngine | None:
    """The model, checked against the contract (None when no model runs here). A bad model fails here,
    before any broker or radio is touched; it is warmed up later (`warm_up`), once the outputs stand, so
    a mistake in them (a broker, a busy port) is said before the long part of the start."""
    if config.model is None:
        return None
    engine = InferenceEngine(config.model)
    engine.warm_up()  # milliseconds: a model that fails on a batch, or answers with the wrong shape, is refused now
    return engine


async def warm_up(engine: InferenceEngine | None, rates: dict[str, float] | None = None) -> float:
    """Compile the kernels and run the model once (seconds taken), in a thread so the dashboard and the
    MQTT connections stay responsive meanwhile; a daemon thread, so Ctrl-C does not wait for it."""
    if engine is None:
        return 0.0
    log.info("warming up: compiling the signal-processing kernels (up to a minute on a first run, a few seconds once cached)")
    t0 = time.perf_counter()
    await in_daemon_thread(warm_up_runtime, engine, dict(rates or WARM_UP_RATES))
    return time.perf_counter() - t0


async def in_daemon_thread(fn, *args):
    """`fn(*args)` in a thread of its own; its result (or exception) comes back to the event loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(result)

    def work() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001  (handed to the awaiting task)
            error = e
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await done


def build_runtime(engine: InferenceEngine, outputs: Outputs, config: RunConfig) -> Runtime:
    return Runtime(engine, outputs.publishers, config.runtime)


def will_topic(prefix: str, devices: list[str], model_runs: bool, kind: str) -> str:
    """The last will's topic: the device's own status when this process publishes the HR of exactly
    one device; otherwise the process's own status, never a device's that others publish."""
    if model_runs and len(devices) == 1:
        return status_topic(prefix, devices[0])
    return service_status_topic(prefix, f"{'gateway' if not model_runs else kind}-{devices[0]}")


@dataclass
class Outputs:
    """The started publishers, in the order they receive messages; `mqtt` is the MQTT one, if any."""

    publishers: list[Publisher]
    mqtt: MqttPublisher | None = None
    dashboard: object | None = None  # the Dashboard, when --dashboard runs in this process
    closed: bool = False

    def set_status(self, device: str, status: str) -> None:
        broadcast_status(self.publishers, device, status)

    async def close(self, *extra: Publisher) -> DeliveryReport | None:
        """Flush and stop every publisher (and `extra` ones outside the list); their delivery reports
        added up (None when none publishes over a network). A publisher that only counts what it could
        not deliver (NATS) adds that as undelivered. Once only."""
        if self.closed:
            return None
        self.closed = True
        report = None
        for publisher in [*self.publishers, *(p for p in extra if p not in self.publishers)]:
            result = await publisher.close()
            if isinstance(result, int) and not isinstance(result, bool):
                result = DeliveryReport(undelivered=result)
            if isinstance(result, DeliveryReport):
                report = result if report is None else report + result
        return report


async def choose_broker(config: RunConfig, stack: contextlib.AsyncExitStack) -> BrokerSettings | None:
    """Where to publish, starting the embedded broker inside `stack` when that is the choice."""
    out = config.outputs
    if not out.mqtt:
        return None
    settings = broker_settings_from_args(config.args)
    if settings is not None:  # its first connection says whether it is down (retried) or a mistake (one line)
        return settings
    if out.broker is None and await broker_answers(DEFAULT_HOST, DEFAULT_PORT):
        log.info("using the MQTT broker already running", broker=f"mqtt://{DEFAULT_HOST}:{DEFAULT_PORT}")
        return BrokerSettings(DEFAULT_HOST, DEFAULT_PORT)
    port = embedded_port(out.broker) if out.broker else DEFAULT_PORT
    await stack.enter_async_context(EmbeddedBroker(DEFAULT_HOST, port))
    log.info(
        "embedded MQTT broker listening",
        broker=f"mqtt://{DEFAULT_HOST}:{port}",
        subscribe=f"mosquitto_sub -h {DEFAULT_HOST} -p {port} -t '{out.prefix}/#' -v",
    )
    return BrokerSettings(DEFAULT_HOST, port)


async def open_outputs(config: RunConfig, stack: contextlib.AsyncExitStack, will: str, engine: InferenceEngine | None = None,
                       service_topic: str | None = None, first: Publisher | None = None) -> Outputs:
    """The MQTT publisher (last will on `will`) and/or stdout, started; with a dashboard it is subscribed
    before anything is published, and with Home Assistant discovery every device's config goes out when
    it first comes online (`service_topic`: the process's own status, which Home Assistant then also
    requires for availability; the sensor expires after a multiple of `engine`'s hop without a message).
    `first`: a publisher of the command's own (NATS), started by it. A mistake in the broker settings, a
    broker that refuses us or a taken dashboard port ends the command here, before the warm-up."""
    out = config.outputs
    publishers: list[Publisher] = [first] if first is not None else []
    target = await choose_broker(config, stack)
    mqtt = dashboard = None
    if target is not None and out.dashboard_port is not None:
        from ..consumers.dashboard.dashboard import Dashboard

        dashboard = await stack.enter_async_context(Dashboard("127.0.0.1", out.dashboard_port, prefix=out.prefix, broker=target))
        await dashboard.ready(5.0)
    if target is not None:
        mqtt = MqttPublisher(target, out.prefix, will, out.outbox, out.flush_timeout_s)
        publishers.append(mqtt)
        if out.ha_prefix is not None:
            from ..consumers.home_assistant.announcer import HaAnnouncer

            publishers.append(HaAnnouncer(mqtt, out.prefix, out.ha_prefix, engine.spec.label if engine else "device", service_topic,
                                          remove_on_leave=out.ha_remove_on_leave, hop_s=engine.spec.hop_s if engine else None))
    if out.stdout:
        publishers.append(StdoutPublisher())
    outputs = Outputs(publishers, mqtt, dashboard)

    async def close_if_failed(exc_type, exc, tb) -> None:  # Ctrl-C during the warm-up, a refusal after this: the tasks end
        if exc_type is not None:
            with contextlib.suppress(Exception):
                await outputs.close()

    stack.push_async_exit(close_if_failed)
    for publisher in publishers:
        if publisher is not first:
            await publisher.start()
    return outputs


async def raw_target(config: RunConfig, stack: contextlib.AsyncExitStack, outputs: Outputs, nats_url: str | None) -> Publisher:
    """Where a gateway (`--publish-raw`) sends raw chunks: the MQTT publisher, or with `--nats URL`
    JetStream (`<prefix>.<device>.raw`, each chunk acknowledged by the stream). A NATS one is not among
    `outputs` (it takes raw chunks only): pass it to `Outputs.close` so what it could not deliver counts."""
    if nats_url is None:
        if outputs.mqtt is None:
            raise UsageError("--publish-raw forwards over MQTT (or NATS with --nats): it cannot be combined with --no-mqtt")
        return outputs.mqtt
    from ..nats.jetstream import NatsSetupError, connect, parse_nats_urls
    from ..nats.publisher import NatsRawPublisher

    try:
        nc = await connect(parse_nats_urls(nats_url), name="ppg-stream gateway")
    except NatsSetupError as e:
        raise UsageError(str(e)) from None
    stack.push_async_callback(nc.close)
    publisher = NatsRawPublisher(nc.jetstream(timeout=3.0), outbox_size=config.outputs.outbox, flush_timeout_s=config.outputs.flush_timeout_s)
    await publisher.start()
    return publisher


@dataclass
class LocalRun:
    """What a local command (`--replay`, `--demo`, `--ble`) feeds its sources into: the outputs, the
    runtime (None for a gateway that runs no model here) running as `task`, and with `--publish-raw`
    the gateway that forwards each source's raw chunks to `raw_out`."""

    outputs: Outputs
    runtime: Runtime | None
    task: asyncio.Task | None
    gateway: object | None  # RawGateway
    raw_out: Publisher | None
    t_start: float

    async def feed(self, work) -> tuple[object, bool]:
        """Run the sources (`work`) until they end or Ctrl-C; a runtime that fails (a model that breaks
        mid-run) ends them too, and its error is raised, instead of sources waiting on it for ever."""
        from .lifecycle import until_done_or_interrupted

        if self.task is None:
            return await until_done_or_interrupted(work)

        async def watched():
            sources = asyncio.ensure_future(work)
            try:
                await asyncio.wait([sources, self.task], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # Ctrl-C: the sources stop with us
                sources.cancel()
                await asyncio.gather(sources, return_exceptions=True)
                raise
            if self.task.done() and not sources.done():
                sources.cancel()
                await asyncio.gather(sources, return_exceptions=True)
                self.task.result()  # raises the runtime's error
            return await sources

        return await until_done_or_interrupted(watched())

    async def finish(self, devices: int) -> tuple[dict, DeliveryReport | None]:
        """Every device leaves after what it queued, the runtime stops; the run's fields and delivery."""
        if self.runtime is not None:
            self.runtime.finish_all()
            await self.task
            fields = self.runtime.summary(time.perf_counter() - self.t_start).as_log_fields()
        else:
            fields = {"devices": devices, "wall_s": round(time.perf_counter() - self.t_start, 3)}
        if self.gateway is not None:
            fields.update(self.gateway.counts())
        return fields, await self.outputs.close(*([self.raw_out] if self.raw_out is not None else []))


async def open_local_run(config: RunConfig, stack: contextlib.AsyncExitStack, engine: InferenceEngine | None, devices: list[str],
                         kind: str, nats_url: str | None, publish_raw: bool, t_start: float,
                         rates: dict[str, float] | None = None) -> LocalRun:
    """The outputs (the last will: the device's status when this process publishes the HR of exactly
    one device, else the process's own), then the warm-up (at `rates`), the runtime started, and the
    gateway when raw chunks go out. The outputs come first, so a mistake in them is said at once and the
    dashboard's address is on screen while the kernels compile."""
    from ..sources.raw_gateway import RawGateway

    will = will_topic(config.outputs.prefix, devices, engine is not None, kind)
    outputs = await open_outputs(config, stack, will, engine,
                                 None if will == status_topic(config.outputs.prefix, devices[0]) else will)
    raw_out = await raw_target(config, stack, outputs, nats_url) if publish_raw else None
    await warm_up(engine, rates)
    runtime = build_runtime(engine, outputs, config) if engine is not None else None
    gateway = RawGateway(raw_out, config.outputs.prefix) if raw_out is not None else None
    task = asyncio.create_task(runtime.run(), name="runtime") if runtime is not None else None
    return LocalRun(outputs, runtime, task, gateway, raw_out, t_start)
