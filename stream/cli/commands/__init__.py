"""One module per `ppg-stream` command; each only chooses its sources and sinks and leaves the
wiring to `ppg_stream.stream.cli.compose`.
"""
