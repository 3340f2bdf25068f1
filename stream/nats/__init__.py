"""NATS JetStream transport for scale-out: subjects and partitions, stream set-up, partition leases
and assignment, the pull feed, per-partition intake, the worker, and the publishers.

Imports `ppg_stream.stream.runtime` and `ppg_stream.stream.core`.
"""
