"""Secret rotation: during the overlap both secrets verify a delivery; after it only the new one does."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from tests.ops import deliver_in_process, verifies

UNLIMITED = {"events_per_minute": 100_000, "monthly_event_limit": 1_000_000, "monthly_attempt_limit": 1_000_000}


@pytest.fixture
def shop(make_tenant):
    return make_tenant("shop", **UNLIMITED)


@pytest.fixture
def endpoint(shop, receiver):
    return shop.create_endpoint(receiver.url())


def rotate(shop, endpoint, body=None):
    response = shop.client.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["signing_secret"]


def latest_delivery(shop, receiver):
    [delivery] = deliver_in_process(shop)
    assert delivery.status == "succeeded", delivery.last_error
    return receiver.received()[-1]


def test_rotate_returns_new_secret_once(shop, endpoint):
    response = shop.client.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret")

    assert response.status_code == 200
    assert set(response.json()) == {"id", "signing_secret"}
    secret = response.json()["signing_secret"]
    assert secret.startswith("whsec_")
    assert secret != endpoint["signing_secret"]
    shown = shop.client.get(f"/v1/endpoints/{endpoint['id']}").json()
    assert "signing_secret" not in shown
    assert secret not in str(shop.client.get("/v1/endpoints").content)
    assert rotate(shop, endpoint) != secret


def test_overlap_signs_with_both_secrets(shop, endpoint, receiver, settings):
    assert settings.SECRET_ROTATION_OVERLAP_DAYS == 7
    new = rotate(shop, endpoint)

    request = latest_delivery(shop, receiver)

    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verifies(new, request)
    assert verifies(endpoint["signing_secret"], request)


def test_after_overlap_only_new_secret_signs(shop, endpoint, receiver):
    new = rotate(shop, endpoint)

    with time_machine.travel(timezone.now() + dt.timedelta(days=7, minutes=1)):
        request = latest_delivery(shop, receiver)
        assert request.headers["webhook-signature"].count("v1,") == 1
        assert verifies(new, request)
        assert not verifies(endpoint["signing_secret"], request)


def test_overlap_days_zero_revokes_at_once(shop, endpoint, receiver):
    new = rotate(shop, endpoint, {"overlap_days": 0})

    request = latest_delivery(shop, receiver)

    assert verifies(new, request)
    assert not verifies(endpoint["signing_secret"], request)


def test_shorter_overlap_ends_early(shop, endpoint, receiver):
    new = rotate(shop, endpoint, {"overlap_days": 2})

    with time_machine.travel(timezone.now() + dt.timedelta(days=1)):
        during = latest_delivery(shop, receiver)
        assert verifies(new, during)
        assert verifies(endpoint["signing_secret"], during)
    with time_machine.travel(timezone.now() + dt.timedelta(days=2, minutes=1)):
        after = latest_delivery(shop, receiver)
        assert verifies(new, after)
        assert not verifies(endpoint["signing_secret"], after)


def test_second_rotation_keeps_every_unexpired_secret(shop, endpoint, receiver):
    second = rotate(shop, endpoint)
    third = rotate(shop, endpoint)

    request = latest_delivery(shop, receiver)

    assert request.headers["webhook-signature"].count("v1,") == 3
    for secret in (endpoint["signing_secret"], second, third):
        assert verifies(secret, request)


@pytest.mark.parametrize("body", [{"overlap_days": -1}, {"overlap_days": 366}, {"overlap_days": "1"},
                                  {"overlap_days": 1.5}, {"overlap": 1}])
def test_rotate_rejects_bad_overlap(shop, endpoint, body):
    response = shop.client.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret", body, format="json")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"


def test_rotate_hides_other_tenants_endpoint(make_tenant, endpoint):
    other = make_tenant("other")
    response = other.client.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret")
    assert response.status_code == 404
