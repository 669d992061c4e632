"""The dead-letter queue: listing, single and bulk replay from the API, the command and a real worker."""

import datetime as dt
import io
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from deliveries import dlq, services
from deliveries.models import Delivery, DeliveryStatus
from tests.harness import Reply
from tests.ops import deliver_in_process, kill_deliveries, verifies

# Limits high enough that these tests measure replay, not the rate limiter.
UNLIMITED = {"events_per_minute": 100_000, "monthly_event_limit": 1_000_000, "monthly_attempt_limit": 1_000_000}


@pytest.fixture
def shop(make_tenant):
    return make_tenant("shop", **UNLIMITED)


def test_dlq_lists_dead_deliveries_with_filters(shop, make_tenant, receiver, settings):
    first = shop.create_endpoint(receiver.url("/a"))
    shop.create_endpoint(receiver.url("/b"))
    receiver.script("/a", Reply(500))
    dead = kill_deliveries(shop, receiver, settings, path="/b")
    assert len(dead) == 2
    make_tenant("other", **UNLIMITED)

    body = shop.client.get("/v1/dlq").json()
    assert {row["id"] for row in body["results"]} == {str(delivery.id) for delivery in dead}
    assert all(row["status"] == "dead" and row["dead_reason"] == "retries_exhausted" for row in body["results"])
    assert all(row["dead_at"] for row in body["results"])

    by_endpoint = shop.client.get("/v1/dlq", {"endpoint_id": first["id"]}).json()["results"]
    assert [row["endpoint_id"] for row in by_endpoint] == [first["id"]]
    assert shop.client.get("/v1/dlq", {"reason": "gone"}).json()["results"] == []
    later = (timezone.now() + dt.timedelta(minutes=1)).isoformat()
    assert shop.client.get("/v1/dlq", {"since": later}).json()["results"] == []
    assert len(shop.client.get("/v1/dlq", {"until": later}).json()["results"]) == 2


def test_dlq_list_rejects_bad_filters(shop):
    response = shop.client.get("/v1/dlq", {"since": "yesterday"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    assert shop.client.get("/v1/dlq", {"endpoint_id": "nope"}).status_code == 400


def test_dlq_hides_other_tenants(shop, make_tenant, receiver, settings):
    shop.create_endpoint(receiver.url())
    dead = kill_deliveries(shop, receiver, settings)
    other = make_tenant("other", **UNLIMITED)

    assert other.client.get("/v1/dlq").json()["results"] == []
    response = other.client.post(f"/v1/deliveries/{dead[0].id}/replay")
    assert response.status_code == 404
    assert other.client.post("/v1/dlq/replay", {}, format="json").json()["matched"] == 0


def test_replay_resets_and_keeps_history(shop, receiver, settings, django_capture_on_commit_callbacks):
    endpoint = shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)

    with django_capture_on_commit_callbacks() as callbacks:
        response = shop.client.post(f"/v1/deliveries/{delivery.id}/replay")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert len(callbacks) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.round_attempts == 0
    assert delivery.attempt_count == 1
    assert delivery.dead_reason == ""
    assert delivery.dead_at is None
    assert delivery.next_attempt_at <= timezone.now()
    assert delivery.attempts.count() == 1
    assert endpoint["signing_secret"].startswith("whsec_")


def test_replayed_delivery_succeeds_and_verifies(shop, receiver, settings):
    endpoint = shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)
    receiver.script("/hook", Reply(200))

    assert shop.client.post(f"/v1/deliveries/{delivery.id}/replay").status_code == 202
    services.dispatch_due(ids=[delivery.id])

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert list(delivery.attempts.values_list("number", "status_code")) == [(1, 500), (2, 200)]
    failed, replayed = receiver.received("/hook")
    assert replayed.headers["webhook-id"] == failed.headers["webhook-id"] == str(delivery.event_id)
    assert replayed.body == failed.body
    assert verifies(endpoint["signing_secret"], replayed)


def test_replay_signs_with_current_secret(shop, receiver, settings):
    endpoint = shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)
    rotated = shop.client.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret", {"overlap_days": 0}, format="json")
    receiver.script("/hook", Reply(200))

    shop.client.post(f"/v1/deliveries/{delivery.id}/replay")
    services.dispatch_due(ids=[delivery.id])

    replayed = receiver.received("/hook")[-1]
    assert verifies(rotated.json()["signing_secret"], replayed)
    assert not verifies(endpoint["signing_secret"], replayed)


def test_replay_of_succeeded_delivery_resends(shop, receiver):
    shop.create_endpoint(receiver.url())
    [delivery] = deliver_in_process(shop)
    assert delivery.status == DeliveryStatus.SUCCEEDED

    response = shop.client.post(f"/v1/deliveries/{delivery.id}/replay")
    services.dispatch_due(ids=[delivery.id])

    assert response.status_code == 202
    first, second = receiver.received()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempt_count == 2


def test_replay_of_waiting_delivery_conflicts(shop, receiver, settings):
    receiver.script("/hook", Reply(500))
    shop.create_endpoint(receiver.url())
    [delivery] = deliver_in_process(shop)
    assert delivery.status == DeliveryStatus.RETRYING

    response = shop.client.post(f"/v1/deliveries/{delivery.id}/replay")

    assert response.status_code == 409
    assert response.json()["code"] == "delivery_in_progress"
    assert response.json()["detail"] == (
        f"delivery {delivery.id} is retrying; only a dead, succeeded or cancelled delivery can be replayed, "
        "so wait until it finishes"
    )


def test_replay_to_disabled_endpoint_conflicts(shop, receiver, settings):
    endpoint = shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)
    shop.client.patch(f"/v1/endpoints/{endpoint['id']}", {"enabled": False}, format="json")

    response = shop.client.post(f"/v1/deliveries/{delivery.id}/replay")

    assert response.status_code == 409
    assert response.json()["code"] == "endpoint_disabled"
    assert response.headers["Content-Type"] == "application/problem+json"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD


def test_replay_to_deleted_endpoint_conflicts(shop, receiver, settings):
    endpoint = shop.create_endpoint(receiver.url())
    [delivery] = kill_deliveries(shop, receiver, settings)
    assert shop.client.delete(f"/v1/endpoints/{endpoint['id']}").status_code == 204

    response = shop.client.post(f"/v1/deliveries/{delivery.id}/replay")

    assert response.status_code == 409
    assert response.json()["code"] == "endpoint_deleted"


def test_bulk_dry_run_changes_nothing(shop, receiver, settings, django_capture_on_commit_callbacks):
    shop.create_endpoint(receiver.url())
    dead = kill_deliveries(shop, receiver, settings, count=3)
    before = {row.id: row.updated_at for row in Delivery.objects.all()}

    with django_capture_on_commit_callbacks() as callbacks:
        response = shop.client.post("/v1/dlq/replay", {"dry_run": True}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "matched": 3, "replayed": 0, "skipped": {"endpoint_disabled": 0, "endpoint_deleted": 0}, "dry_run": True,
    }
    assert callbacks == []
    assert {row.id: row.updated_at for row in Delivery.objects.all()} == before
    assert set(Delivery.objects.values_list("status", flat=True)) == {"dead"}
    assert len(dead) == 3


def test_bulk_replay_by_ids_with_limit(shop, receiver, settings):
    shop.create_endpoint(receiver.url())
    first, second, third = kill_deliveries(shop, receiver, settings, count=3)

    body = {"ids": [str(first.id), str(third.id)], "limit": 1}
    response = shop.client.post("/v1/dlq/replay", body, format="json")

    assert response.json()["matched"] == 1
    assert response.json()["replayed"] == 1
    statuses = dict(Delivery.objects.values_list("id", "status"))
    assert statuses == {first.id: "pending", second.id: "dead", third.id: "dead"}


def test_bulk_replay_skips_disabled_endpoints(shop, receiver, settings):
    live = shop.create_endpoint(receiver.url("/live"))
    off = shop.create_endpoint(receiver.url("/off"))
    receiver.script("/live", Reply(500))
    kill_deliveries(shop, receiver, settings, path="/off")
    shop.client.patch(f"/v1/endpoints/{off['id']}", {"enabled": False}, format="json")

    response = shop.client.post("/v1/dlq/replay", {}, format="json")

    assert response.json() == {
        "matched": 2, "replayed": 1, "skipped": {"endpoint_disabled": 1, "endpoint_deleted": 0}, "dry_run": False,
    }
    assert Delivery.objects.get(endpoint_id=live["id"]).status == "pending"
    assert Delivery.objects.get(endpoint_id=off["id"]).status == "dead"


def test_bulk_replay_filters_by_endpoint_and_time(shop, receiver, settings):
    first = shop.create_endpoint(receiver.url("/a"))
    shop.create_endpoint(receiver.url("/b"))
    receiver.script("/a", Reply(500))
    kill_deliveries(shop, receiver, settings, path="/b")
    later = (timezone.now() + dt.timedelta(minutes=1)).isoformat()

    nothing = shop.client.post("/v1/dlq/replay", {"since": later}, format="json")
    by_endpoint = shop.client.post("/v1/dlq/replay", {"endpoint_id": first["id"], "until": later}, format="json")

    assert nothing.json()["matched"] == 0
    assert by_endpoint.json()["replayed"] == 1
    assert Delivery.objects.get(endpoint_id=first["id"]).status == "pending"
    assert Delivery.objects.filter(status="dead").count() == 1


@pytest.mark.parametrize("body, field", [
    ({"limit": 0}, "limit"),
    ({"limit": "10"}, "limit"),
    ({"ids": ["not-a-uuid"]}, "ids"),
    ({"ids": []}, "ids"),
    ({"dry_run": "yes"}, "dry_run"),
    ({"since": "soon"}, "since"),
])
def test_bulk_replay_rejects_bad_body(shop, body, field):
    response = shop.client.post("/v1/dlq/replay", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_bulk_replay_rejects_unknown_field(shop):
    response = shop.client.post("/v1/dlq/replay", {"tenant_id": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_fields"


def test_admin_replay_across_tenants(shop, make_tenant, receiver, settings, admin_api):
    other = make_tenant("other", **UNLIMITED)
    shop.create_endpoint(receiver.url())
    other.create_endpoint(receiver.url())
    [mine] = kill_deliveries(shop, receiver, settings)
    [theirs] = kill_deliveries(other, receiver, settings)

    dry = admin_api.post("/v1/admin/dlq/replay", {"dry_run": True}, format="json")
    scoped = admin_api.post("/v1/admin/dlq/replay", {"tenant_id": str(other.tenant.id)}, format="json")

    assert dry.json()["matched"] == 2
    assert scoped.json()["replayed"] == 1
    assert Delivery.objects.get(id=theirs.id).status == "pending"
    assert Delivery.objects.get(id=mine.id).status == "dead"
    assert admin_api.post("/v1/admin/dlq/replay", {}, format="json").json()["replayed"] == 1


def test_admin_replay_rejects_tenant_key(shop):
    response = shop.client.post("/v1/admin/dlq/replay", {}, format="json")
    assert response.status_code == 403


def test_command_requires_scope(shop):
    with pytest.raises(CommandError, match="--all-tenants"):
        call_command("replay_dlq")
    with pytest.raises(CommandError, match="not found"):
        call_command("replay_dlq", "--tenant", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError, match="not an ISO 8601 time"):
        call_command("replay_dlq", "--all-tenants", "--since", "2026-13-45T00:00:00Z")
    with pytest.raises(CommandError, match="--limit=0 is invalid"):
        call_command("replay_dlq", "--all-tenants", "--limit", "0")
    with pytest.raises(CommandError, match="--ids is empty"):
        call_command("replay_dlq", "--all-tenants", "--ids", "")
    with pytest.raises(CommandError, match="--ids is empty"):
        call_command("replay_dlq", "--all-tenants", "--ids", " , ")


def test_command_takes_dates_as_utc(shop):
    call_command("replay_dlq", "--all-tenants", "--since", "2026-01-31", "--until", "2026-02-01T00:00:00",
                 "--dry-run", stdout=io.StringIO())


def test_command_replays_a_tenant(shop, make_tenant, receiver, settings, capsys):
    other = make_tenant("other", **UNLIMITED)
    shop.create_endpoint(receiver.url())
    other.create_endpoint(receiver.url())
    kill_deliveries(shop, receiver, settings, count=2)
    [theirs] = kill_deliveries(other, receiver, settings)

    call_command("replay_dlq", "--tenant", str(shop.tenant.id), "--dry-run")
    assert capsys.readouterr().out.strip().endswith(
        "dry run: matched 2, replayed 0, skipped: endpoint_disabled 0, endpoint_deleted 0"
    )
    assert Delivery.objects.filter(status="dead").count() == 3

    call_command("replay_dlq", "--tenant", str(shop.tenant.id), "--reason", "retries_exhausted")
    assert capsys.readouterr().out.strip().endswith("matched 2, replayed 2, skipped: endpoint_disabled 0, "
                                                    "endpoint_deleted 0")
    assert list(Delivery.objects.filter(status="dead").values_list("id", flat=True)) == [theirs.id]


def test_command_all_tenants_by_ids(shop, receiver, settings, capsys):
    shop.create_endpoint(receiver.url())
    first, second = kill_deliveries(shop, receiver, settings, count=2)

    call_command("replay_dlq", "--all-tenants", "--ids", f"{second.id}")

    assert "matched 1, replayed 1" in capsys.readouterr().out
    assert Delivery.objects.get(id=first.id).status == "dead"
    assert Delivery.objects.get(id=second.id).status == "pending"


def _make_dead_rows(handle, receiver, count: int) -> list:
    """Deliver `count` events successfully, then mark their deliveries dead directly."""
    handle.create_endpoint(receiver.url())
    ids = []
    for number in range(count):
        ids.extend(delivery.id for delivery in deliver_in_process(handle, payload={"n": number}))
    Delivery.objects.filter(id__in=ids).update(status="dead", dead_reason="retries_exhausted", dead_at=timezone.now())
    return ids


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_replays_replay_each_once(make_tenant, receiver, broker):
    shop = make_tenant("shop", **UNLIMITED)
    ids = _make_dead_rows(shop, receiver, 40)
    results = []

    def replay() -> None:
        try:
            results.append(dlq.replay_matching(dlq.DlqFilter(ids=ids)))
        finally:
            connection.close()

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(result.replayed for result in results) == 40
    assert Delivery.objects.filter(status="pending").count() == 40


@pytest.mark.slow
def test_replay_through_worker(make_tenant, receiver, start_worker):
    shop = make_tenant("shop", **UNLIMITED)
    endpoint = shop.create_endpoint(receiver.url())
    receiver.script("/hook", Reply(503))
    start_worker(env={"DELIVERY_MAX_RETRIES": "0", "DELIVERY_SWEEP_SECONDS": "1"}, beat=True)
    assert shop.send_event().status_code == 202
    delivery = _wait_for_status("dead")

    receiver.script("/hook", Reply(200))
    response = shop.client.post("/v1/dlq/replay", {"ids": [str(delivery.id)]}, format="json")
    assert response.json()["replayed"] == 1
    delivery = _wait_for_status("succeeded")

    failed, replayed = receiver.wait_for(2)
    assert replayed.headers["webhook-id"] == failed.headers["webhook-id"] == str(delivery.event_id)
    assert verifies(endpoint["signing_secret"], replayed)
    assert delivery.attempt_count == 2


def _wait_for_status(status: str, timeout: float = 30) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = Delivery.objects.filter(status=status).first()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no delivery reached {status} in {timeout} s: {list(Delivery.objects.values('status'))}")


def test_admin_replay_unknown_tenant_is_404(admin_api, db):
    response = admin_api.post("/v1/admin/dlq/replay", {"tenant_id": "00000000-0000-0000-0000-000000000000"},
                              format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
