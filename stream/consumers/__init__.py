"""What reads the public topics or the runtime's counters: the browser dashboard, Home Assistant
discovery, Prometheus metrics.

Imports the transports, `ppg_stream.stream.runtime` and `ppg_stream.stream.core`; never a source or the CLI.
"""
