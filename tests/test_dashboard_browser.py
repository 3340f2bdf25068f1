"""The dashboard as a person sees it: headless Chromium (Debian's, driven by Playwright through its
executable path) on the page of a running `ppg-stream dashboard`, fed through the real Mosquitto."""

from __future__ import annotations

import asyncio
import shutil
import time

import aiomqtt
import pytest
import pytest_asyncio

from tests.conftest import IN_CI
from tests.dashboard_helpers import clear_retained, hr_payload, start_dashboard, unique_prefix

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


def _need(what: str, ok: bool) -> None:
    if not ok:
        if IN_CI:
            pytest.fail(f"{what} is missing (.ci/run installs it)")
        pytest.skip(f"{what} is missing: apt-get install chromium; pip install -e '.[test]'")


@pytest.fixture(scope="module")
def dashboard(mosquitto_1883):
    dash = start_dashboard(unique_prefix())
    yield dash
    assert dash.stop() == 0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    _need("Debian's chromium", shutil.which(CHROMIUM) is not None)
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _need("the playwright package", False)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser, dashboard):
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(dashboard.url)
    # functions, not expression strings: Playwright evals strings, which the page's CSP rightly forbids
    await page.wait_for_function("() => document.getElementById('summary').textContent.includes('connected')")
    yield page
    await page.close()
    assert errors == []


@pytest_asyncio.fixture(loop_scope="module")
async def mqtt(mosquitto_1883):
    async with aiomqtt.Client(*mosquitto_1883, max_inflight_messages=500) as client:
        yield client


def card(device: str) -> str:
    return f'article.card[data-device="{device}"]'


async def shows_within(page, device: str, text: str, start: float, timeout_s: float = 3.0) -> float:
    """Seconds from `start` until the device's card shows `text` as its heart rate."""
    await page.wait_for_function(
        "([sel, text]) => document.querySelector(sel + ' .bpm')?.textContent === text",
        arg=[card(device), text], polling="raf", timeout=timeout_s * 1000,
    )
    return time.monotonic() - start


@pytest.mark.slow
async def test_a_new_device_shows_its_heart_rate_within_half_a_second(page, dashboard, mqtt):
    prefix, device = dashboard.prefix, "wrist-a"
    try:
        await mqtt.publish(f"{prefix}/{device}/status", b"online", qos=1, retain=True)
        start = time.monotonic()
        await mqtt.publish(f"{prefix}/{device}/hr", hr_payload(device, 0, 123.4, confidence=0.82), qos=1)
        first = await shows_within(page, device, "123", start)
        start = time.monotonic()
        await mqtt.publish(f"{prefix}/{device}/hr", hr_payload(device, 1, 97.6, confidence=0.64, late=True), qos=1)
        second = await shows_within(page, device, "98", start)
        print(f"publish → card: new device {first * 1000:.0f} ms, next value {second * 1000:.0f} ms")
        assert first < 0.5 and second < 0.5
        c = page.locator(card(device))
        assert await c.locator(".status").text_content() == "online"
        assert await c.locator(".conf-text").text_content() == "confidence 64 %"
        assert await c.locator(".model").text_content() == "ppg-student@1.1"
        assert await c.locator(".late").text_content() == "1"
        assert "offline" not in (await c.get_attribute("class"))
    finally:
        await clear_retained(prefix, [device])


async def test_offline_greys_the_card_out(page, dashboard, mqtt):
    prefix, device = dashboard.prefix, "wrist-b"
    try:
        await mqtt.publish(f"{prefix}/{device}/status", b"online", qos=1, retain=True)
        await mqtt.publish(f"{prefix}/{device}/hr", hr_payload(device, 0, 88.0), qos=1)
        await shows_within(page, device, "88", time.monotonic())
        c = page.locator(card(device))
        assert await c.evaluate("el => getComputedStyle(el).filter") == "none"
        await mqtt.publish(f"{prefix}/{device}/status", b"offline", qos=1, retain=True)
        await page.wait_for_function("sel => document.querySelector(sel).classList.contains('offline')", arg=card(device), timeout=2000)
        await page.wait_for_function("sel => getComputedStyle(document.querySelector(sel)).filter === 'grayscale(1)'", arg=card(device), timeout=2000)
        assert float(await c.evaluate("el => getComputedStyle(el).opacity")) < 0.7
        assert await c.locator(".status").text_content() == "offline"
        assert (await c.locator(".seen").text_content()).startswith("offline · last seen ")
        assert await c.locator(".bpm").text_content() == "88"  # the last value stays, greyed
        await mqtt.publish(f"{prefix}/{device}/status", b"online", qos=1, retain=True)
        await page.wait_for_function("sel => !document.querySelector(sel).classList.contains('offline')", arg=card(device), timeout=2000)
    finally:
        await clear_retained(prefix, [device])


async def visible_cards(page) -> dict[str, str]:
    """device → heart rate text of the cards in the DOM (only those on screen exist)."""
    return await page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('article.card:not([hidden])')]"
        ".map(c => [c.dataset.device, c.querySelector('.bpm').textContent]))")


async def next_frame(page) -> None:
    await page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


async def scroll_through(page) -> dict[str, str]:
    await page.evaluate("() => window.scrollTo(0, 0)")
    seen: dict[str, str] = {}
    while True:
        await next_frame(page)
        seen.update(await visible_cards(page))
        if await page.evaluate("() => window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1"):
            return seen
        await page.evaluate("() => window.scrollBy(0, window.innerHeight * 0.8)")


@pytest.mark.slow
async def test_a_hundred_devices_render_sort_and_filter(page, dashboard, mqtt, tmp_path):
    prefix = dashboard.prefix
    devices = [f"dev-{i:03d}" for i in range(100)]
    bpm = {d: 50.0 + (i * 37) % 100 for i, d in enumerate(devices)}  # distinct, not in id order
    try:
        for d in devices:
            await mqtt.publish(f"{prefix}/{d}/status", b"offline" if d.endswith("7") else b"online", qos=1, retain=True)
        for window in range(30):  # a minute of history each, with the charts' confidence bands
            await asyncio.gather(*(
                mqtt.publish(f"{prefix}/{d}/hr", hr_payload(d, window, bpm[d] + (window % 5), confidence=0.5 + (i % 5) / 10), qos=1)
                for i, d in enumerate(devices)
            ))
        expected = {d: str(round(bpm[d] + (29 % 5))) for d in devices}  # window 29's value
        await page.wait_for_function("() => document.getElementById('summary').textContent.startsWith('100 devices')", timeout=10_000)

        # every device renders with its latest number: scroll through the whole grid (again, while the
        # last messages may still be on their way)
        deadline = time.monotonic() + 10
        while (seen := await scroll_through(page)) != expected:
            assert time.monotonic() < deadline, {d: (seen.get(d), t) for d, t in expected.items() if seen.get(d) != t}
        in_dom = await page.locator("article.card").count()
        assert in_dom < 60, "cards off screen should not be in the DOM"
        await page.evaluate("() => window.scrollTo(0, 0)")

        # the chart of a card on screen has been drawn: line and band pixels on its canvas
        await next_frame(page)
        drawn = await page.locator(card("dev-000") + " canvas").evaluate(
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }")
        assert drawn > 500

        await page.select_option("#sort", "hr-desc")
        await next_frame(page)
        order = await page.evaluate(
            "() => [...document.querySelectorAll('article.card:not([hidden])')]"
            ".map(c => [c.getBoundingClientRect().top, c.getBoundingClientRect().left, c.dataset.device])")
        ranked = [d for _, _, d in sorted(order)][:8]  # the first two rows, left to right
        assert ranked == sorted(devices, key=lambda d: -bpm[d])[:8]

        await page.select_option("#sort", "status")  # offline first
        await next_frame(page)
        assert await page.locator("article.card.offline:not([hidden])").count() == 10  # a pooled, hidden card may keep its class
        offline = await page.evaluate("() => [...document.querySelectorAll('article.card.offline:not([hidden])')].map(c => c.dataset.device)")
        assert sorted(offline) == [d for d in devices if d.endswith("7")]

        await page.fill("#filter", "dev-04")
        await next_frame(page)
        assert sorted((await visible_cards(page)).keys()) == [f"dev-04{i}" for i in range(10)]
        assert "10 shown" in await page.locator("#summary").text_content()
        await page.fill("#filter", "")
        await page.select_option("#sort", "id")

        shot = tmp_path / "dashboard-100.png"
        await page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        await clear_retained(prefix, devices)


async def canvas_ink(page, device: str, region: str) -> int:
    """Pixels drawn in a part of the card's chart: 'left' (the y labels) or 'bottom' (the x labels)."""
    return await page.locator(card(device) + " canvas").evaluate(
        """(c, region) => {
             const dpr = window.devicePixelRatio || 1, w = c.width, h = c.height;
             const [x0, y0, x1, y1] = region === "left" ? [0, 0, 26 * dpr, h - 14 * dpr] : [30 * dpr, h - 12 * dpr, w, h];
             const d = c.getContext("2d").getImageData(x0, y0, x1 - x0, y1 - y0).data;
             let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""", region)


async def test_a_card_shows_the_whole_model_name_and_a_labelled_chart(page, dashboard, mqtt):
    """The model was cut to "ppg-studen…" on every card, and the charts had no time axis and a scale of their
    own without saying so."""
    prefix, device = dashboard.prefix, "wrist-c"
    try:
        await mqtt.publish(f"{prefix}/{device}/status", b"online", qos=1, retain=True)
        for window in range(45):  # 96 s of stream time: a tick at 1:00
            await mqtt.publish(f"{prefix}/{device}/hr", hr_payload(device, window, 70 + window % 9, model="ppg-student@1.3"), qos=1)
        await shows_within(page, device, str(70 + 44 % 9), time.monotonic(), timeout_s=5)
        model = page.locator(card(device) + " .model")
        assert await model.text_content() == "ppg-student@1.3"
        assert await model.evaluate("el => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight")  # nothing cut
        await next_frame(page)
        scale = await page.locator(card(device) + " canvas").get_attribute("data-scale")
        assert scale == "60-90 bpm, 0:00-1:36", scale  # the labels drawn: y ticks every 10 bpm, x in stream time
        assert await canvas_ink(page, device, "left") > 50 and await canvas_ink(page, device, "bottom") > 50
        assert await page.locator(card(device) + " button.clear").is_hidden()  # online: nothing to clear
    finally:
        await clear_retained(prefix, [device])


async def test_an_offline_card_can_be_cleared_from_the_page(page, dashboard, mqtt):
    prefix = dashboard.prefix
    try:
        for device in ("gone-1", "gone-2"):
            await mqtt.publish(f"{prefix}/{device}/status", b"offline", qos=1, retain=True)
        await page.wait_for_function("sel => document.querySelector(sel)", arg=card("gone-2"), timeout=3000)
        await page.locator(card("gone-1") + " button.clear").click()
        await page.wait_for_function("sel => !document.querySelector(sel)", arg=card("gone-1"), timeout=3000)
        assert await page.locator(card("gone-2")).count() == 1
        await page.wait_for_function("() => !document.getElementById('clear-offline').hidden", timeout=3000)
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.locator("#clear-offline").click()
        await page.wait_for_function("sel => !document.querySelector(sel)", arg=card("gone-2"), timeout=3000)
    finally:
        await clear_retained(prefix, ["gone-1", "gone-2"])


@pytest.mark.slow
async def test_the_message_rate_of_one_device_every_two_seconds_reads_half_a_message_per_second(browser, mosquitto_1883):
    """It read "0 msg/s": messages were counted over the last second only."""
    dash = start_dashboard(unique_prefix())
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        await page.goto(dash.url)
        async with aiomqtt.Client(*mosquitto_1883) as client:
            for window in range(7):  # 12 s at the 2 s hop: the rate's 10 s window is full of it
                await client.publish(f"{dash.prefix}/steady/hr", hr_payload("steady", window, 75.0), qos=1)
                await asyncio.sleep(2.0)
        await page.wait_for_function("() => document.getElementById('summary').textContent.includes('· 0.5 msg/s ·')", timeout=3000)
    finally:
        await page.close()
        assert dash.stop() == 0
