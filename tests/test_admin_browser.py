"""The DLQ page of the Django admin in a real browser: log in, replay a dead delivery, see it succeed."""

import contextlib
import time
from pathlib import Path

import pytest

from tests.harness import Reply
from tests.ops import kill_deliveries, verifies

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "test-artifacts" / "admin-dlq-replay.png"
UNLIMITED = {"events_per_minute": 100_000, "monthly_event_limit": 1_000_000, "monthly_attempt_limit": 1_000_000}
PASSWORD = "staff-password-for-tests"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                     "(apt-get install -y chromium)"),
]


@contextlib.contextmanager
def chromium_page():
    """Open a page in Debian's chromium. Start it after in-process deliveries, because both run an event loop."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(15000)
            yield page
        finally:
            browser.close()


def wait_for_status_text(page, url: str, text: str, timeout: float = 30) -> None:
    """Reload a delivery's admin page until its status reads `text`, so only the browser reads the database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(url)
        if page.inner_text(".field-status .readonly") == text:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} shows status {page.inner_text('.field-status .readonly')!r}, not {text!r}")


def test_staff_replays_dead_delivery(live_server, make_tenant, django_user_model, receiver, settings, start_worker):
    django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    shop = make_tenant("shop", **UNLIMITED)
    endpoint = shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)
    receiver.script("/hook", Reply(200))
    start_worker()

    # No database access from here until the browser closes: Playwright's greenlets would open
    # connections that the test teardown never closes.
    with chromium_page() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/deliveries/deaddelivery/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#result_list")
        assert str(delivery.id) in page.inner_text("#result_list")

        page.check(f"input[name=_selected_action][value='{delivery.id}']")
        page.select_option("select[name=action]", "replay_selected")
        page.click("button[name=index]")
        page.wait_for_selector("ul.messagelist")
        assert "Replayed 1 of 1 dead deliveries." in page.inner_text("ul.messagelist")

        wait_for_status_text(page, f"{live_server.url}/admin/deliveries/delivery/{delivery.id}/change/", "Succeeded")
        assert "receiver returned http 500" in page.inner_text(".inline-group")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert delivery.attempt_count == 2
    failed, replayed = receiver.received("/hook")
    assert replayed.headers["webhook-id"] == failed.headers["webhook-id"]
    assert verifies(endpoint["signing_secret"], replayed)
