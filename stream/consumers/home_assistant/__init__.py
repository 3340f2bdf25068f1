"""Home Assistant MQTT discovery: the configs (pure) and the announcer that publishes them as devices
come and go. Imports `ppg_stream.stream.core` only (it publishes through the publisher it is given).
"""
