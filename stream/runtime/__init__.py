"""The one runtime: per-device state in one keyed table, the batching scheduler, the interfaces
sources and publishers meet it through, the run's accounting, and the small async helpers (backoff,
task cancellation, log throttling) the layers above share.

Imports `ppg_stream.stream.core` only.
"""
