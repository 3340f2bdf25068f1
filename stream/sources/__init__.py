"""Where chunks come from: BLE wearables (`ble/`), replayed recordings, and raw chunks of gateways
(the intake `serve` feeds the runtime from, and the gateway side that publishes them).

Imports the transports, `ppg_stream.stream.runtime`, `ppg_stream.stream.core` and `ppg_stream.replay`.
"""
