"""Delivery edge cases against real receivers: redirects, slow and huge responses, exact bytes."""

import json
import time

import pytest
import standardwebhooks

from deliveries import services
from deliveries.models import Delivery, DeliveryAttempt
from endpoints.secrets import InvalidSecret, decode_secret, sign
from tests.receivers import RawReceiver, redirect, stream_chunked, trickle_body, trickle_headers


def deliver_once(tenant, url: str, event_type: str = "order.created", payload=None) -> Delivery:
    endpoint = tenant.create_endpoint(url)
    assert tenant.send_event(event_type, payload or {"n": 1}).status_code == 202
    services.fan_out_pending()
    services.dispatch_due()
    return Delivery.objects.get(endpoint_id=endpoint["id"])


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_a_failure_not_followed(tenant, canaries, status):
    target = f"http://127.0.0.2:{canaries[0].port}/latest/meta-data/"
    with RawReceiver(routes={"/redir": redirect(status, target)}) as server:
        delivery = deliver_once(tenant, server.url("/redir"))
        assert len(server.requests) == 1
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert canaries[0].connections == 0
    assert attempt.status_code == status
    assert attempt.error_kind == "http_status"
    assert target in attempt.error_message
    assert delivery.status == "retrying"


def test_trickled_body_ends_at_total_deadline(tenant, settings):
    settings.DELIVERY_TIMEOUT_SECONDS = 2
    settings.DELIVERY_CONNECT_TIMEOUT_SECONDS = 1
    with RawReceiver(routes={"/slow": trickle_body(0.5)}) as server:
        started = time.monotonic()
        delivery = deliver_once(tenant, server.url("/slow"))
        elapsed = time.monotonic() - started
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert elapsed < 2 + 2
    assert attempt.error_kind == "timeout"
    assert attempt.duration_ms <= 3000
    assert delivery.status == "retrying"


def test_trickled_headers_end_at_total_deadline(tenant, settings):
    settings.DELIVERY_TIMEOUT_SECONDS = 2
    settings.DELIVERY_CONNECT_TIMEOUT_SECONDS = 1
    with RawReceiver(routes={"/slow": trickle_headers(0.5)}) as server:
        delivery = deliver_once(tenant, server.url("/slow"))
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.error_kind == "timeout"
    assert attempt.duration_ms <= 3000


def test_slow_receiver_does_not_hold_up_others(tenant, settings, receiver):
    settings.DELIVERY_TIMEOUT_SECONDS = 2
    with RawReceiver(routes={"/slow": trickle_body(0.5)}) as server:
        tenant.create_endpoint(server.url("/slow"))
        tenant.create_endpoint(receiver.url("/fast"))
        tenant.send_event()
        services.fan_out_pending()
        started = time.time()
        services.dispatch_due()
    (fast,) = receiver.received("/fast")
    assert fast.received_at - started < 1.0


@pytest.mark.parametrize("status", [200, 500])
def test_huge_response_is_truncated(tenant, status):
    with RawReceiver(routes={"/huge": stream_chunked(status, 2 * 1024**3)}) as server:
        delivery = deliver_once(tenant, server.url("/huge"))
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.status_code == status
    assert attempt.response_truncated is True
    assert len(attempt.response_body.encode("utf-8")) <= 4096
    assert delivery.status == ("succeeded" if status == 200 else "retrying")


RAW_EVENT = (
    '{"type":"user.created","data":{"b":1,"a":"é","name":"Achu ₹ മലയാളം 😊",'
    '"amount":1.10,"big":12345678901234567890}}'
).encode("utf-8")


def test_signature_covers_exact_utf8_bytes(tenant, receiver):
    endpoint = tenant.create_endpoint(receiver.url("/utf8"))
    response = tenant.client.generic("POST", "/v1/events", RAW_EVENT, content_type="application/json")
    assert response.status_code == 202, response.content
    services.fan_out_pending()
    services.dispatch_due()
    (request,) = receiver.received("/utf8")
    standardwebhooks.Webhook(endpoint["signing_secret"]).verify(request.body, request.headers)
    assert int(request.headers["content-length"]) == len(request.body)
    delivered = json.loads(request.body.decode("utf-8"))
    assert delivered["data"] == json.loads(RAW_EVENT)["data"]
    assert list(delivered["data"]) == ["b", "a", "name", "amount", "big"]
    assert "Achu ₹ മലയാളം 😊".encode("utf-8") in request.body
    assert delivered["data"]["big"] == 12345678901234567890


def test_signer_matches_known_answer():
    key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secret", ["whsec_!!!!", "whsec_", "whsec_YWJj", "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_" + "A" * 120])
def test_weak_or_malformed_secret_rejected(tenant, receiver, secret):
    with pytest.raises(InvalidSecret):
        decode_secret(secret)
    response = tenant.client.post("/v1/endpoints", {"url": receiver.url(), "signing_secret": secret}, format="json")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_signing_secret"
    assert secret not in response.content.decode()
    assert tenant.tenant.endpoints.count() == 0


def test_generated_secrets_are_strong_and_unique(tenant, receiver):
    secrets = {tenant.create_endpoint(receiver.url())["signing_secret"] for _ in range(5)}
    assert len(secrets) == 5
    assert all(len(decode_secret(secret)) == 32 for secret in secrets)


def test_tenant_supplied_secret_signs(tenant, receiver):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    endpoint = tenant.create_endpoint(receiver.url("/own"), signing_secret=secret)
    assert endpoint["signing_secret"] == secret
    tenant.send_event()
    services.fan_out_pending()
    services.dispatch_due()
    (request,) = receiver.received("/own")
    standardwebhooks.Webhook(secret).verify(request.body, request.headers)


def test_custom_headers_cannot_replace_signature(tenant, receiver):
    endpoint = tenant.create_endpoint(receiver.url("/h"), headers={"X-Env": "prod", "Authorization": "Bearer abc"})
    tenant.send_event()
    services.fan_out_pending()
    services.dispatch_due()
    (request,) = receiver.received("/h")
    assert request.headers["x-env"] == "prod"
    assert request.headers["authorization"] == "Bearer abc"
    standardwebhooks.Webhook(endpoint["signing_secret"]).verify(request.body, request.headers)
    assert request.headers["content-type"] == "application/json"
