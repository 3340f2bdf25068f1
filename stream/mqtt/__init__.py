"""MQTT 3.1.1 transport: the pure codec, one connection, the HR/status publisher, the subscriber,
broker settings (URLs, TLS, credentials) and the embedded broker for a first run.

Imports `ppg_stream.stream.runtime` and `ppg_stream.stream.core`.
"""
