"""Server-Sent Events fan-out: every browser gets every event once, and a browser that stops reading
is dropped (its page reconnects and gets a fresh snapshot) instead of growing the server's memory."""

from __future__ import annotations

import pytest

from ppg_stream.stream.consumers.dashboard.hub import CLOSE, EventHub, TooManyClients


async def test_each_client_gets_each_event_and_a_stalled_one_is_dropped():
    hub = EventHub(backlog=3, max_clients=2)
    reader, stalled = hub.subscribe(), hub.subscribe()
    for i in range(5):
        hub.publish("update", f'{{"i":{i}}}')
        assert reader.get_nowait() == f'event: update\ndata: {{"i":{i}}}\n\n'
    assert stalled.get_nowait() is CLOSE and stalled.empty()  # dropped at the 4th event, its backlog freed
    assert hub.dropped == 1 and hub.clients == {reader}
    hub.subscribe()  # its place is free again


async def test_client_limit_and_shutdown():
    hub = EventHub(backlog=3, max_clients=1)
    queue = hub.subscribe()
    with pytest.raises(TooManyClients):
        hub.subscribe()
    hub.publish("update", "{}")
    hub.close_all()
    assert queue.get_nowait() is CLOSE and not hub.clients
