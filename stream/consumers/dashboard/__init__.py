"""A live dashboard in the browser, fed only by the public MQTT topics (`<prefix>/+/hr`, `<prefix>/+/status`)."""

from .dashboard import Dashboard, DashboardError

__all__ = ["Dashboard", "DashboardError"]
