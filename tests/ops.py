"""Helpers for the operations tests: deliveries that die against a failing receiver, and signature checks."""

from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from deliveries import services
from deliveries.models import Delivery
from tests.harness import ReceivedRequest, Reply

SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def deliver_in_process(handle, event_type: str = "order.created", payload: dict | None = None) -> list[Delivery]:
    """Send an event through the API, fan it out and make one attempt of each delivery in this process."""
    response = handle.send_event(event_type, payload)
    assert response.status_code == 202, response.content
    ids = services.fan_out_pending(response.json()["id"])
    services.dispatch_due(ids=ids)
    return list(Delivery.objects.filter(id__in=ids).order_by("created_at"))


def kill_deliveries(handle, receiver, settings, count: int = 1, path: str = "/hook") -> list[Delivery]:
    """Return `count` dead deliveries: one attempt each against a receiver returning 500, no retries."""
    settings.DELIVERY_MAX_RETRIES = 0
    receiver.script(path, Reply(500, b"broken"))
    dead = []
    for number in range(count):
        dead.extend(deliver_in_process(handle, payload={"n": number}))
    for delivery in dead:
        assert delivery.status == "dead", (delivery.status, delivery.last_error)
    return dead


def signed_headers(request: ReceivedRequest) -> dict[str, str]:
    return {name: request.headers[name] for name in SIGNED_HEADERS}


def verifies(secret: str, request: ReceivedRequest) -> bool:
    """Return whether both the standardwebhooks and the svix package accept the request under `secret`."""
    headers = signed_headers(request)
    results = []
    for verifier in (StandardWebhook(secret), SvixWebhook(secret)):
        try:
            verifier.verify(request.body, headers)
        except Exception:  # noqa: BLE001 - each package raises its own verification error class
            results.append(False)
        else:
            results.append(True)
    assert results[0] == results[1], f"standardwebhooks and svix disagree: {results}"
    return results[0]
