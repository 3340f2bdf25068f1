"""One module per `ppg-stream` command; `stream/cli.py` only dispatches."""
