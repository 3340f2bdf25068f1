"""`ppg-stream`: a thin dispatcher (`main`), the one composition root (`compose`: engine, runtime
and outputs from one config object), the shared options, and one module per command in `commands/`.

The top layer: it may import every package below it; nothing imports it.
"""
