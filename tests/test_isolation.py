"""Tenant isolation: another tenant's objects are not found, never listed and never changed."""

import pytest
from django.conf import settings
from django.forms.models import model_to_dict
from django.utils import timezone

from deliveries import services as delivery_services
from deliveries.models import Delivery, DeliveryAttempt
from endpoints.models import Endpoint, EndpointSecret
from events.models import Event


@pytest.fixture
def world(make_tenant, receiver):
    """Tenant A with nothing of its own but a key; tenant B with an endpoint, event, delivery and attempt."""
    tenant_a, tenant_b = make_tenant("a"), make_tenant("b")
    endpoint = tenant_b.create_endpoint(receiver.url("/b"))
    event_id = tenant_b.send_event().json()["id"]
    delivery_services.fan_out_pending(event_id)
    delivery_services.dispatch_due()
    delivery = Delivery.objects.get(event_id=event_id)
    Delivery.objects.filter(id=delivery.id).update(status="dead", dead_reason="retries_exhausted",
                                                   dead_at=timezone.now())
    ids = {"endpoint": endpoint["id"], "event": event_id, "delivery": str(delivery.id)}
    return tenant_a, tenant_b, ids


def snapshot() -> dict:
    rows = {}
    for model in (Endpoint, EndpointSecret, Event, Delivery, DeliveryAttempt):
        rows[model.__name__] = sorted((str(model_to_dict(row)) for row in model.objects.all()))
    return rows


OBJECT_ROUTES = [
    ("get", "/v1/endpoints/{endpoint}", None),
    ("patch", "/v1/endpoints/{endpoint}", {"description": "taken over"}),
    ("patch", "/v1/endpoints/{endpoint}", {"url": "http://127.0.0.1:9/x", "enabled": False}),
    ("delete", "/v1/endpoints/{endpoint}", None),
    ("post", "/v1/endpoints/{endpoint}/rotate-secret", {"overlap_days": 0}),
    ("get", "/v1/events/{event}", None),
    ("get", "/v1/deliveries/{delivery}", None),
    ("get", "/v1/deliveries/{delivery}/attempts", None),
    ("post", "/v1/deliveries/{delivery}/replay", None),
]


@pytest.mark.parametrize("method,route,body", OBJECT_ROUTES)
def test_other_tenant_object_not_found(world, method, route, body):
    tenant_a, _, ids = world
    before = snapshot()

    response = getattr(tenant_a.client, method)(route.format(**ids), body, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert snapshot() == before


LIST_ROUTES = [
    "/v1/endpoints", "/v1/events", "/v1/deliveries", "/v1/dlq", "/v1/deliveries?event_id={event}",
    "/v1/deliveries?endpoint_id={endpoint}", "/v1/dlq?endpoint_id={endpoint}", "/v1/events?type=order.created",
]


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_lists_never_show_other_tenant(world, route):
    tenant_a, tenant_b, ids = world

    response = tenant_a.client.get(route.format(**ids))
    own = tenant_b.client.get(route.format(**ids))

    assert response.status_code == 200
    assert response.json()["results"] == []
    for object_id in ids.values():
        assert object_id not in response.content.decode()
    assert own.json()["results"] != []


def test_bulk_replay_ignores_other_tenant(world):
    tenant_a, _, ids = world
    before = snapshot()

    response = tenant_a.client.post("/v1/dlq/replay", {"ids": [ids["delivery"]]}, format="json")

    assert response.status_code == 200
    assert response.json()["replayed"] == 0
    assert snapshot() == before


ADMIN_ROUTES = [
    ("get", "/v1/admin/tenants"), ("post", "/v1/admin/tenants"), ("get", "/v1/admin/tenants/{tenant}"),
    ("patch", "/v1/admin/tenants/{tenant}"), ("post", "/v1/admin/tenants/{tenant}/api-keys"),
    ("delete", "/v1/admin/api-keys/{key}"), ("post", "/v1/admin/dlq/replay"),
    ("post", "/v1/admin/retention/run"), ("get", "/v1/admin/metrics/summary"),
]


@pytest.mark.parametrize("method,route", ADMIN_ROUTES)
def test_tenant_key_on_admin_route_forbidden(world, method, route):
    tenant_a, _, _ = world
    path = route.format(tenant=tenant_a.tenant.id, key=tenant_a.api_key.id)

    response = getattr(tenant_a.client, method)(path, {"name": "x", "disabled": False}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    tenant_a.api_key.refresh_from_db()
    assert tenant_a.api_key.revoked_at is None


def test_revoked_key_unauthorized(tenant, admin_api):
    assert admin_api.delete(f"/v1/admin/api-keys/{tenant.api_key.id}").status_code == 204

    response = tenant.client.get("/v1/endpoints")

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_disabled_tenant_forbidden(tenant, admin_api):
    admin_api.patch(f"/v1/admin/tenants/{tenant.tenant.id}", {"disabled": True}, format="json")

    response = tenant.send_event()

    assert response.status_code == 403
    assert response.json()["code"] == "tenant_disabled"
    assert Event.objects.count() == 0


def test_admin_key_not_a_tenant_key(api):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.ADMIN_API_KEY}")

    assert api.get("/v1/endpoints").status_code == 401


@pytest.mark.parametrize("field,value", [
    ("tenant", "00000000-0000-0000-0000-000000000001"), ("tenant_id", "00000000-0000-0000-0000-000000000001"),
    ("id", "00000000-0000-0000-0000-000000000002"), ("created_at", "2020-01-01T00:00:00Z"),
    ("disabled_reason", "none"), ("deleted_at", None), ("secrets", []),
])
def test_endpoint_read_only_fields_rejected(world, field, value):
    _, tenant_b, ids = world
    before = snapshot()

    created = tenant_b.client.post("/v1/endpoints", {"url": "http://127.0.0.1:9/x", field: value}, format="json")
    updated = tenant_b.client.patch(f"/v1/endpoints/{ids['endpoint']}", {field: value}, format="json")

    assert created.status_code == 400
    assert created.json()["code"] == "unknown_fields"
    assert updated.status_code == 400
    assert snapshot() == before


@pytest.mark.parametrize("field", ["tenant", "id", "created_at", "status"])
def test_event_read_only_fields_rejected(tenant, field):
    response = tenant.client.post("/v1/events", {"type": "a.b", "payload": {}, field: "x"}, format="json")

    assert response.status_code == 400
    assert Event.objects.count() == 0


@pytest.mark.parametrize("field,value", [
    ("id", "00000000-0000-0000-0000-000000000002"), ("events_used", 0), ("attempts_used", 0),
    ("api_keys", []), ("created_at", "2020-01-01T00:00:00Z"),
])
def test_tenant_read_only_fields_rejected(tenant, admin_api, field, value):
    response = admin_api.patch(f"/v1/admin/tenants/{tenant.tenant.id}", {field: value}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_fields"
