"""Home Assistant discovery for the devices a process publishes: a device's retained sensor config goes
out the first time it comes online (through the MQTT publisher's retained, acknowledged path), so its
heart rate appears in Home Assistant by itself; availability then follows its status topic.
With `remove_on_leave`, a device that leaves gets the empty retained config (the entity is removed)."""

from __future__ import annotations

from collections import OrderedDict

from .discovery import DEFAULT_HOP_S, discovery_messages, ppg_stream_version, removal_messages

MAX_ANNOUNCED = 100_000  # devices remembered as announced (a re-announcement is harmless: configs are retained)


class HaAnnouncer:
    def __init__(self, mqtt, prefix: str, discovery_prefix: str, model_label: str, service_status_topic: str | None, remove_on_leave: bool = False,
                 hop_s: float | None = None) -> None:
        self.mqtt = mqtt
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.model_label = model_label
        self.service_status_topic = service_status_topic
        self.remove_on_leave = remove_on_leave
        self.hop_s = hop_s or DEFAULT_HOP_S
        self.sw_version = ppg_stream_version()
        self._announced: OrderedDict[str, None] = OrderedDict()

    async def start(self) -> None:
        return None

    def publish(self, messages: list[dict]) -> None:
        return None

    async def close(self) -> None:
        return None

    def set_status(self, device: str, status: str) -> None:
        if status == "online" and device not in self._announced:
            for topic, payload in discovery_messages(self.prefix, device, self.model_label, self.sw_version,
                                                     self.discovery_prefix, self.service_status_topic, self.hop_s):
                self.mqtt.publish_retained(topic, payload)
            self._announced[device] = None
            if len(self._announced) > MAX_ANNOUNCED:
                self._announced.popitem(last=False)
        elif status == "offline" and self.remove_on_leave and device in self._announced:
            for topic, payload in removal_messages(self.prefix, device, self.discovery_prefix):
                self.mqtt.publish_retained(topic, payload)
            del self._announced[device]
