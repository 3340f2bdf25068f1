"""The per-window latency budget's default, on its own so that the command line can show it without
importing the runtime (and Numba with it) just to print a usage error."""

DEFAULT_BUDGET_MS = 50.0
