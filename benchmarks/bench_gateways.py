"""A small fleet as an operator starts it: G gateways, each `ppg-stream --replay FILE --publish-raw
--speed S` in its own process (the gateway's default 0.25 s chunks), into one `ppg-stream serve`, through
a Mosquitto of this script's own with Mosquitto's default settings. Counts the HR windows each device
got (of the recording's 57 for 120 s) and prints serve's summary and the machine's load average.

    python benchmarks/bench_gateways.py                       # 20 gateways, --speed 4, 120 s recordings
    python benchmarks/bench_gateways.py --gateways 40 --speed 8
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--speed", default="4", help="each gateway's --speed")
    ap.add_argument("--seconds", type=float, default=120.0, help="length of each synthetic recording")
    args = ap.parse_args()

    import paho.mqtt.client as mqtt
    from ppg_stream.replay.synthetic import synthesize, write_synthetic_dalia

    work = Path(tempfile.mkdtemp(prefix="bench-gateways-"))
    work.chmod(0o777)  # mosquitto, started as root, drops to its own user
    files = []
    for i in range(args.gateways):
        path = work / f"g{i:02d}.pkl"
        write_synthetic_dalia(path, synthesize(args.seconds, seed=700 + i), subject=f"g{i:02d}", with_chest=False)
        files.append(path)
    n_windows = int((args.seconds - 8.0) // 2.0) + 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")  # otherwise Mosquitto's defaults
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker_url = f"mqtt://127.0.0.1:{port}"
    prefix = "gateways"
    cli = [sys.executable, "-m", "ppg_stream.stream.cli"]
    time.sleep(0.5)
    serve = subprocess.Popen([*cli, "serve", "--broker", broker_url, "--topic-prefix", prefix, "--log-json", "--idle-timeout", "600"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []

    def read() -> None:
        for line in serve.stderr:
            if line.startswith("{"):
                lines.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    got: dict[str, set[int]] = {}
    checker = None
    try:
        while not any(e.get("event") == "subscribed" for e in lines):
            if serve.poll() is not None:
                raise SystemExit("serve exited before subscribing")
            time.sleep(0.1)

        def on_message(_client, _userdata, message) -> None:
            m = json.loads(message.payload)
            got.setdefault(m["device"], set()).add(m["window"])

        checker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-gateways-{os.getpid()}")
        checker.on_message = on_message
        checker.connect("127.0.0.1", port)
        checker.subscribe(f"{prefix}/+/hr", qos=1)
        checker.loop_start()
        load0 = os.getloadavg()[0]
        gateways = [subprocess.Popen([*cli, "--replay", str(f), "--publish-raw", "--speed", args.speed, "--topic-prefix", prefix, "--broker", broker_url],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for f in files]
        for g in gateways:
            g.wait()
        load1 = os.getloadavg()[0]
        time.sleep(8.0)  # what serve still has to publish
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=120)
    finally:
        if serve.poll() is None:
            serve.kill()
        if checker is not None:
            checker.loop_stop()
        broker.terminate()
        broker.wait(timeout=10)
    summary = next((e for e in lines if e.get("event") == "serve interrupted"), {})
    counts = sorted(len(got.get(f"g{i:02d}", ())) for i in range(args.gateways))
    print(f"{args.gateways} gateways at --speed {args.speed}, load average {load0:.1f} at the start and {load1:.1f} when they finished")
    print(f"windows per device (of {n_windows}): min {counts[0]}, max {counts[-1]}, all: {counts}")
    print("serve:", {k: summary.get(k, 0) for k in ("windows", "late", "dropped_stale", "received_chunks", "missing_chunks", "dropped_chunks",
                                                    "reconnects", "latency_p50_ms", "latency_p99_ms")})


if __name__ == "__main__":
    main()
