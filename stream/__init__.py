"""The serving half: sources → one runtime → transports and consumers, in packages by concern.

Layers, each importing only the ones below it (never up, never in a circle):
    cli        the one composition root and one module per command
    consumers  dashboard, Home Assistant, metrics     sources  BLE, replay, raw-chunk intake and gateway
    mqtt, nats transports (codec, connection, publisher, subscriber / JetStream set-up, leases, worker)
    runtime    the device table, the one runtime, the Source and Publisher interfaces, async helpers
    core       pure computation: chunk, model contract, filters, ring, preprocessing, inference,
               decoding, tracking, beats, the HR message and raw-chunk formats; the built-in models
`ppg_stream.replay` (recordings) sits below all of them; the training half (`ppg_stream.models`)
above: it imports the core for train/serve parity, never the other way round.
"""

if __name__ != "ppg_stream.stream":  # the bare folder name imported from a checkout on sys.path
    raise ImportError("import ppg_stream.stream, not stream: ppg-stream installs its folders under its own namespace, ppg_stream")
