"""The Django admin for staff: what each page shows and hides, the DLQ replay action and query counts."""

import datetime as dt
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from deliveries import services
from deliveries.models import Delivery, DeliveryAttempt
from dispatcher import admin_tools
from endpoints.models import Endpoint, EndpointSecret
from events.models import Event
from tenants.models import ApiKey, Tenant
from tests.harness import Reply
from tests.ops import deliver_in_process, kill_deliveries, verifies

UNLIMITED = {"events_per_minute": 100_000, "monthly_event_limit": 1_000_000, "monthly_attempt_limit": 1_000_000}

LIST_PAGES = {
    "tenants": "/admin/tenants/tenant/",
    "api keys": "/admin/tenants/apikey/",
    "endpoints": "/admin/endpoints/endpoint/",
    "events": "/admin/events/event/",
    "deliveries": "/admin/deliveries/delivery/",
    "dlq": "/admin/deliveries/deaddelivery/",
}


@pytest.fixture
def shop(make_tenant):
    return make_tenant("shop", **UNLIMITED)


def populate(count: int) -> None:
    """Add `count` rows to every table the admin lists, half of the deliveries dead."""
    tenants = Tenant.objects.bulk_create([Tenant(name=f"tenant {n}") for n in range(count)])
    ApiKey.objects.bulk_create([
        ApiKey(tenant=tenant, prefix=f"pdk_{n:08d}", key_hash=uuid.uuid4().hex * 2) for n, tenant in enumerate(tenants)
    ])
    endpoints = Endpoint.objects.bulk_create([
        Endpoint(tenant=tenant, url=f"https://receiver.example/{n}") for n, tenant in enumerate(tenants)
    ])
    events = Event.objects.bulk_create([
        Event(tenant=tenant, type="order.created", body="{}", body_bytes=2, fanned_out_at=timezone.now())
        for tenant in tenants
    ])
    now = timezone.now()
    Delivery.objects.bulk_create([
        Delivery(tenant=tenant, event=event, endpoint=endpoint, status="dead" if n % 2 else "succeeded",
                 dead_at=now if n % 2 else None, dead_reason="retries_exhausted" if n % 2 else "")
        for n, (tenant, event, endpoint) in enumerate(zip(tenants, events, endpoints))
    ])


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured)


def test_list_queries_do_not_grow_with_rows(admin_client):
    populate(10)
    few = {name: queries_for(admin_client, url) for name, url in LIST_PAGES.items()}

    populate(290)
    many = {name: queries_for(admin_client, url) for name, url in LIST_PAGES.items()}

    assert many == few
    for name, count in many.items():
        assert count <= 12, (name, count)


def test_delivery_list_does_not_load_payloads(admin_client):
    populate(3)
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(LIST_PAGES["deliveries"])
    listing = [query["sql"] for query in captured if 'FROM "deliveries"' in query["sql"] and "LIMIT" in query["sql"]]
    assert listing
    assert all('"events"."body"' not in sql for sql in listing)


def test_index_shows_delivery_counts(admin_client):
    populate(4)
    old = Delivery.objects.filter(status="dead").first()
    Delivery.objects.filter(id=old.id).update(created_at=timezone.now() - dt.timedelta(days=2))

    html = admin_client.get("/admin/").content.decode()

    assert "Deliveries created in the last 24 hours" in html
    assert '<td class="delivery-status-succeeded">2</td>' in html
    assert '<td class="delivery-status-dead">1</td>' in html
    assert '<td class="delivery-status-pending">0</td>' in html
    assert "/admin/deliveries/deaddelivery/" in html


def test_every_page_opens(admin_client, shop, receiver, settings):
    shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)
    pages = list(LIST_PAGES.values()) + [
        f"/admin/tenants/tenant/{shop.tenant.id}/change/",
        f"/admin/tenants/apikey/{shop.api_key.id}/change/",
        f"/admin/endpoints/endpoint/{delivery.endpoint_id}/change/",
        f"/admin/events/event/{delivery.event_id}/change/",
        f"/admin/deliveries/delivery/{delivery.id}/change/",
        f"/admin/deliveries/deaddelivery/{delivery.id}/change/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/django_celery_beat/crontabschedule/",
    ]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_api_key_page_shows_prefix_only(admin_client, shop):
    html = admin_client.get(f"/admin/tenants/apikey/{shop.api_key.id}/change/").content.decode()

    assert shop.api_key.prefix in html
    assert shop.api_key.key_hash not in html
    assert shop.key not in html
    assert "/admin/tenants/apikey/add/" not in admin_client.get(LIST_PAGES["api keys"]).content.decode()


def test_revoke_action_revokes_keys(admin_client, shop):
    response = admin_client.post(LIST_PAGES["api keys"], {
        "action": "revoke_selected", "_selected_action": [str(shop.api_key.id)],
    }, follow=True)

    assert "Revoked 1 API keys." in response.content.decode()
    shop.api_key.refresh_from_db()
    assert shop.api_key.revoked_at is not None
    assert shop.client.get("/v1/endpoints").status_code == 401


def test_endpoint_page_hides_secrets(admin_client, shop, receiver):
    endpoint = shop.create_endpoint(receiver.url(), headers={"X-Receiver-Token": "hunter2-token-value"})
    stored = EndpointSecret.objects.get(endpoint_id=endpoint["id"])

    html = admin_client.get(f"/admin/endpoints/endpoint/{endpoint['id']}/change/").content.decode()

    assert "X-Receiver-Token: ••••••" in html
    assert "hunter2-token-value" not in html
    assert endpoint["signing_secret"] not in html
    assert endpoint["signing_secret"].removeprefix("whsec_") not in html
    assert stored.encrypted_secret not in html


def test_endpoint_page_enables_endpoint(admin_client, shop, receiver):
    endpoint = shop.create_endpoint(receiver.url())
    Endpoint.objects.filter(id=endpoint["id"]).update(enabled=False, disabled_reason="gone")

    response = admin_client.post(f"/admin/endpoints/endpoint/{endpoint['id']}/change/", {
        "description": "fixed", "enabled": "on", "disabled_reason": "gone",
    })

    assert response.status_code == 302
    saved = Endpoint.objects.get(id=endpoint["id"])
    assert saved.enabled is True
    assert saved.disabled_reason == ""
    assert saved.url == receiver.url()


def test_event_page_shows_payload_read_only(admin_client, shop):
    response = shop.send_event("invoice.paid", {"invoice": "INV-42", "amount": 1200})
    event_id = response.json()["id"]

    html = admin_client.get(f"/admin/events/event/{event_id}/change/").content.decode()

    assert "INV-42" in html
    assert "&quot;amount&quot;: 1200" in html
    assert 'name="body"' not in html
    assert 'name="_save"' not in html


def test_delivery_page_lists_attempts(admin_client, shop, receiver, settings):
    shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)

    html = admin_client.get(f"/admin/deliveries/delivery/{delivery.id}/change/").content.decode()

    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert "broken" in html
    assert "500" in html
    assert attempt.error_message in html
    assert 'name="_save"' not in html


def test_delivery_list_filters(admin_client, shop, make_tenant, receiver, settings):
    shop.create_endpoint(receiver.url())
    [dead] = kill_deliveries(shop, receiver, settings)
    other = make_tenant("other", **UNLIMITED)
    other.create_endpoint(receiver.url())
    [theirs] = kill_deliveries(other, receiver, settings)
    url = LIST_PAGES["deliveries"]

    by_status = admin_client.get(url, {"status__exact": "succeeded"}).content.decode()
    by_tenant = admin_client.get(url, {"tenant_id": str(shop.tenant.id)}).content.decode()
    by_endpoint = admin_client.get(url, {"endpoint_id": str(theirs.endpoint_id)}).content.decode()
    bad = admin_client.get(url, {"tenant_id": "not-a-uuid"})

    assert str(dead.id) not in by_status
    assert str(dead.id) in by_tenant
    assert str(theirs.id) not in by_tenant
    assert str(theirs.id) in by_endpoint
    assert str(dead.id) not in by_endpoint
    assert bad.status_code == 302
    assert bad.url.endswith("?e=1")


def test_dlq_page_lists_dead_only(admin_client, shop, receiver, settings):
    settings.DELIVERY_MAX_RETRIES = 0
    endpoint = shop.create_endpoint(receiver.url("/dead"))
    shop.create_endpoint(receiver.url("/live"))
    receiver.script("/dead", Reply(500))
    deliver_in_process(shop)
    dead = Delivery.objects.get(endpoint_id=endpoint["id"])
    live = Delivery.objects.exclude(endpoint_id=endpoint["id"]).get()
    assert (dead.status, live.status) == ("dead", "succeeded")

    html = admin_client.get(LIST_PAGES["dlq"]).content.decode()

    assert str(dead.id) in html
    assert str(live.id) not in html
    assert "Replay selected" in html


def test_dlq_action_replays_selected(admin_client, shop, receiver, settings):
    endpoint = shop.create_endpoint(receiver.url())
    first, second = kill_deliveries(shop, receiver, settings, count=2)
    receiver.script("/hook", Reply(200))

    response = admin_client.post(LIST_PAGES["dlq"], {
        "action": "replay_selected", "_selected_action": [str(first.id)],
    }, follow=True)

    assert "Replayed 1 of 1 dead deliveries." in response.content.decode()
    assert Delivery.objects.get(id=second.id).status == "dead"
    services.dispatch_due(ids=[first.id])
    first.refresh_from_db()
    assert first.status == "succeeded"
    replayed = receiver.received()[-1]
    assert replayed.headers["webhook-id"] == str(first.event_id)
    assert verifies(endpoint["signing_secret"], replayed)


def test_dlq_action_skips_disabled_endpoints(admin_client, shop, receiver, settings):
    endpoint = shop.create_endpoint(receiver.url())
    [dead] = kill_deliveries(shop, receiver, settings)
    shop.client.patch(f"/v1/endpoints/{endpoint['id']}", {"enabled": False}, format="json")

    response = admin_client.post(LIST_PAGES["dlq"], {
        "action": "replay_selected", "_selected_action": [str(dead.id)],
    }, follow=True)

    html = response.content.decode()
    assert "Replayed 0 of 1 dead deliveries." in html
    assert "Skipped 1 whose endpoint is disabled or deleted" in html
    assert Delivery.objects.get(id=dead.id).status == "dead"


def test_staff_without_permission_cannot_replay(client, django_user_model, shop, receiver, settings):
    shop.create_endpoint(receiver.url())
    [dead] = kill_deliveries(shop, receiver, settings)
    staff = django_user_model.objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    client.force_login(staff)

    assert client.get(LIST_PAGES["dlq"]).status_code == 403
    client.post(LIST_PAGES["dlq"], {"action": "replay_selected", "_selected_action": [str(dead.id)]})
    assert Delivery.objects.get(id=dead.id).status == "dead"


def test_anonymous_user_goes_to_login(client):
    response = client.get(LIST_PAGES["dlq"])
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_paginator_count_reads_at_most_cap(db, monkeypatch):
    populate(300)
    monkeypatch.setattr(admin_tools, "EXACT_COUNT_CAP", 100)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tenant_profile")

    unfiltered = admin_tools.BoundedCountPaginator(Tenant.objects.all(), 100)
    filtered = admin_tools.BoundedCountPaginator(Tenant.objects.filter(disabled=False), 100)
    small = admin_tools.BoundedCountPaginator(Tenant.objects.filter(name="tenant 7"), 100)

    assert unfiltered.count == 300
    assert filtered.count == 101
    assert small.count == 1


def test_create_api_key_prints_key_once(shop, capsys):
    call_command("create_api_key", str(shop.tenant.id))

    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if "=" in line)
    api_key = ApiKey.objects.get(id=lines["api_key_id"])
    assert lines["api_key"].startswith(api_key.prefix)
    assert lines["api_key"] not in api_key.key_hash
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {lines['api_key']}")
    assert client.get("/v1/endpoints").status_code == 200


def test_create_api_key_rejects_unknown_tenant(db):
    with pytest.raises(CommandError, match="is not a UUID"):
        call_command("create_api_key", "acme")
    with pytest.raises(CommandError, match="not found"):
        call_command("create_api_key", "00000000-0000-0000-0000-000000000000")
