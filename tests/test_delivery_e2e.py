import json

import pytest
import standardwebhooks
import svix.webhooks

from deliveries.models import DeliveryAttempt
from events.models import Event
from tests.harness import wait_for_succeeded


def verify_with_both(secret: str, request) -> None:
    headers = {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    standardwebhooks.Webhook(secret).verify(request.body, headers)
    svix.webhooks.Webhook(secret).verify(request.body, {**headers, "svix-id": headers["webhook-id"],
                                                         "svix-timestamp": headers["webhook-timestamp"],
                                                         "svix-signature": headers["webhook-signature"]})


@pytest.mark.slow
def test_fan_out_delivers_and_verifies(make_tenant, receiver, start_worker):
    tenant = make_tenant("shop")
    subscribed = [
        tenant.create_endpoint(receiver.url("/a"), event_types=["order.*"]),
        tenant.create_endpoint(receiver.url("/b"), event_types=["order.created"]),
    ]
    tenant.create_endpoint(receiver.url("/c"), event_types=["invoice.paid"])
    start_worker()

    event_ids = set()
    for number in range(50):
        response = tenant.send_event("order.created", {"number": number})
        assert response.status_code == 202, response.content
        event_ids.add(response.json()["id"])

    received = receiver.wait_for(100, timeout=60)
    assert len(received) == 100
    assert receiver.received("/c") == []
    secrets = {"/a": subscribed[0]["signing_secret"], "/b": subscribed[1]["signing_secret"]}
    for request in received:
        verify_with_both(secrets[request.path], request)
        assert json.loads(request.body)["id"] == request.headers["webhook-id"]
    assert {request.headers["webhook-id"] for request in received} == event_ids
    assert wait_for_succeeded(100) == 100
    assert DeliveryAttempt.objects.count() == 100
    assert Event.objects.filter(fanned_out_at__isnull=True).count() == 0
