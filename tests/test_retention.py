"""Retention: exactly the expired rows go, open deliveries and their events stay, dry runs delete nothing."""

import datetime as dt

import pytest
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from deliveries import retention, tasks
from deliveries.models import Delivery, DeliveryAttempt
from dispatcher.celery import app
from endpoints.models import Endpoint
from events.models import Event

EVENT_DAYS, DELIVERY_DAYS, ATTEMPT_DAYS, DLQ_DAYS = 10, 20, 5, 30


@pytest.fixture
def cutoffs(settings):
    settings.RETENTION_EVENT_DAYS = EVENT_DAYS
    settings.RETENTION_DELIVERY_DAYS = DELIVERY_DAYS
    settings.RETENTION_ATTEMPT_DAYS = ATTEMPT_DAYS
    settings.RETENTION_DLQ_DAYS = DLQ_DAYS


class Rows:
    """Builds events, deliveries and attempts whose ages are given in days before now."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.now = timezone.now()
        self.endpoint = Endpoint.objects.create(tenant=tenant, url="http://127.0.0.1:9/hook")
        self.extra_endpoints = 0

    def ago(self, days: float) -> dt.datetime:
        return self.now - dt.timedelta(days=days)

    def event(self, age: float, fanned_out: bool = True) -> Event:
        created = self.ago(age)
        return Event.objects.create(tenant=self.tenant, type="order.created", body="{}", body_bytes=2,
                                    created_at=created, fanned_out_at=created if fanned_out else None)

    def delivery(self, event: Event, status: str, age: float, updated_age: float | None = None,
                 dead_age: float | None = None) -> Delivery:
        endpoint = self.endpoint
        if Delivery.objects.filter(event=event, endpoint=endpoint).exists():
            self.extra_endpoints += 1
            endpoint = Endpoint.objects.create(tenant=self.tenant, url=f"http://127.0.0.1:9/{self.extra_endpoints}")
        delivery = Delivery.objects.create(tenant=self.tenant, event=event, endpoint=endpoint, status=status)
        Delivery.objects.filter(id=delivery.id).update(
            created_at=self.ago(age), updated_at=self.ago(updated_age if updated_age is not None else age),
            dead_at=self.ago(dead_age) if dead_age is not None else None,
            dead_reason="retries_exhausted" if status == "dead" else "",
        )
        return delivery

    def attempt(self, delivery: Delivery, age: float) -> DeliveryAttempt:
        number = delivery.attempts.count() + 1
        return DeliveryAttempt.objects.create(delivery=delivery, tenant=self.tenant, number=number,
                                              started_at=self.ago(age), duration_ms=10, status_code=500)


@pytest.fixture
def world(cutoffs, make_tenant):
    """Rows on both sides of every cutoff; `gone` names the ids one run must delete."""
    rows = Rows(make_tenant("shop").tenant)
    gone = {"events": set(), "deliveries": set(), "delivery_attempts": set()}

    # An expired event whose only delivery and attempt expired: all three go.
    old_event = rows.event(EVENT_DAYS + 1)
    old_done = rows.delivery(old_event, "succeeded", DELIVERY_DAYS + 1)
    gone["events"].add(old_event.id)
    gone["deliveries"].add(old_done.id)
    gone["delivery_attempts"].add(rows.attempt(old_done, DELIVERY_DAYS + 1).id)

    # An expired event whose delivery is younger than its cutoff stays; the delivery's old attempt goes.
    kept_event = rows.event(EVENT_DAYS + 1)
    young_done = rows.delivery(kept_event, "succeeded", DELIVERY_DAYS - 1)
    gone["delivery_attempts"].add(rows.attempt(young_done, ATTEMPT_DAYS + 1).id)
    rows.attempt(young_done, ATTEMPT_DAYS - 1)

    # A cancelled delivery past its cutoff goes even though its event is young.
    young_event = rows.event(EVENT_DAYS - 1)
    gone["deliveries"].add(rows.delivery(young_event, "cancelled", DELIVERY_DAYS + 1).id)

    # A delivery created long ago but changed recently (a replay that succeeded) stays.
    rows.delivery(rows.event(EVENT_DAYS + 5), "succeeded", DELIVERY_DAYS + 5, updated_age=1)

    # Events without deliveries: an expired one goes, a young one and one not yet fanned out stay.
    gone["events"].add(rows.event(EVENT_DAYS + 1).id)
    rows.event(EVENT_DAYS - 1)
    rows.event(EVENT_DAYS + 1, fanned_out=False)

    # Open deliveries of very old events stay with their events and attempts.
    for status in ("retrying", "pending", "in_flight"):
        open_delivery = rows.delivery(rows.event(DLQ_DAYS + 10), status, DLQ_DAYS + 10)
        rows.attempt(open_delivery, DLQ_DAYS + 10)

    # Dead deliveries follow RETENTION_DLQ_DAYS from their death, attempts included.
    dead_event = rows.event(DLQ_DAYS + 10)
    expired_dead = rows.delivery(dead_event, "dead", DLQ_DAYS + 10, dead_age=DLQ_DAYS + 1)
    gone["events"].add(dead_event.id)
    gone["deliveries"].add(expired_dead.id)
    gone["delivery_attempts"].add(rows.attempt(expired_dead, DLQ_DAYS + 10).id)
    kept_dead = rows.delivery(rows.event(DLQ_DAYS + 10), "dead", DLQ_DAYS + 10, dead_age=DLQ_DAYS - 1)
    rows.attempt(kept_dead, DLQ_DAYS + 10)
    return gone


def snapshot() -> dict[str, set]:
    return {
        "events": set(Event.objects.values_list("id", flat=True)),
        "deliveries": set(Delivery.objects.values_list("id", flat=True)),
        "delivery_attempts": set(DeliveryAttempt.objects.values_list("id", flat=True)),
    }


def expected_counts(gone: dict[str, set]) -> dict[str, int]:
    return {table: len(ids) for table, ids in gone.items()}


def test_retention_deletes_exactly_expired_rows(world):
    before = snapshot()

    report = retention.run_retention(batch_size=2)

    after = snapshot()
    for table, ids in world.items():
        assert before[table] - after[table] == ids, table
    assert report.counts == expected_counts(world)
    assert report.counts == {"events": 3, "deliveries": 3, "delivery_attempts": 3}


def test_retention_keeps_open_deliveries(world):
    retention.run_retention()

    open_rows = Delivery.objects.filter(status__in=["pending", "in_flight", "retrying"])
    assert open_rows.count() == 3
    assert DeliveryAttempt.objects.filter(delivery__in=open_rows).count() == 3
    assert Event.objects.filter(deliveries__in=open_rows).count() == 3


def test_second_run_deletes_nothing(world):
    retention.run_retention()
    before = snapshot()

    report = retention.run_retention()

    assert report.counts == {"events": 0, "deliveries": 0, "delivery_attempts": 0}
    assert snapshot() == before


def test_dry_run_counts_without_deleting(world):
    before = snapshot()

    dry = retention.run_retention(dry_run=True)

    assert snapshot() == before
    assert dry.counts == expected_counts(world)
    assert retention.run_retention().counts == dry.counts


def test_command_dry_run_and_run(world, capsys):
    before = snapshot()

    call_command("retention", "--dry-run")
    assert capsys.readouterr().out.strip() == "retention would delete: events 3, deliveries 3, delivery_attempts 3"
    assert snapshot() == before

    call_command("retention", "--batch-size", "1")
    assert capsys.readouterr().out.strip().endswith("retention deleted: events 3, deliveries 3, delivery_attempts 3")
    assert before["events"] - snapshot()["events"] == world["events"]


def test_command_rejects_bad_batch_size(db):
    with pytest.raises(CommandError, match="--batch-size=0 is invalid"):
        call_command("retention", "--batch-size", "0")


def test_admin_route_runs_retention(world, admin_api):
    dry = admin_api.post("/v1/admin/retention/run", {"dry_run": True}, format="json")
    assert dry.status_code == 200
    assert dry.json()["dry_run"] is True
    assert dry.json()["counts"] == expected_counts(world)
    assert set(dry.json()["cutoffs"]) == {"events", "deliveries", "attempts", "dlq"}

    run = admin_api.post("/v1/admin/retention/run")
    assert run.json()["counts"] == expected_counts(world)
    assert admin_api.post("/v1/admin/retention/run").json()["counts"] == {
        "events": 0, "deliveries": 0, "delivery_attempts": 0,
    }


def test_admin_route_rejects_bad_input(admin_api, make_tenant):
    assert admin_api.post("/v1/admin/retention/run", {"dry_run": "yes"}, format="json").status_code == 400
    tenant = make_tenant("shop")
    assert tenant.client.post("/v1/admin/retention/run").status_code == 403


def test_beat_runs_retention_hourly():
    entry = django_settings.CELERY_BEAT_SCHEDULE["retention"]
    assert entry["task"] == "deliveries.run_retention"
    assert entry["schedule"] == crontab(minute=0)
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks


def test_retention_task_applies_retention(world):
    assert tasks.run_retention() == expected_counts(world)


def test_beat_purges_limits_tables():
    entry = django_settings.CELERY_BEAT_SCHEDULE["limits-purge"]
    assert entry["task"] == "limits.purge_expired"
    assert entry["schedule"] == crontab(minute=30)
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
