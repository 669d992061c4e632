"""Secret hygiene: signing secrets, API keys and header values stay out of responses, logs and dumps."""

import logging
import subprocess

import pytest
import standardwebhooks
from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from endpoints.models import EndpointSecret
from endpoints.secrets import generate_secret
from tests.harness import database_url

HEADER_VALUE = "hv-3f9a1c7e5b2d4068"


def signed_headers(request) -> dict:
    return {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}


TENANT_GET_ROUTES = [
    "/v1/endpoints", "/v1/endpoints/{endpoint}", "/v1/events", "/v1/events/{event}", "/v1/deliveries",
    "/v1/deliveries/{delivery}", "/v1/deliveries/{delivery}/attempts", "/v1/dlq", "/v1/limits/safety",
    "/v1/limits/usage", "/v1/metrics/summary",
]


ADMIN_GET_ROUTES = ["/v1/admin/tenants", "/v1/admin/tenants/{tenant}", "/v1/admin/metrics/summary"]


def error_bodies(handle, ids: dict, secret: str) -> list[bytes]:
    """Provoke errors whose input carries a secret or a key, and return the error bodies."""
    client = handle.client
    responses = [
        client.post("/v1/endpoints", {"url": "http://127.0.0.1:9/x", "signing_secret": secret + "!"}, format="json"),
        client.post("/v1/endpoints", {"url": "http://127.0.0.1:9/x", "signing_secret": secret[:20]}, format="json"),
        client.patch(f"/v1/endpoints/{ids['endpoint']}", {"signing_secret": secret}, format="json"),
        client.post(f"/v1/endpoints/{ids['endpoint']}/rotate-secret", {"secret": secret}, format="json"),
        client.post("/v1/endpoints", {"url": "http://127.0.0.1:9/x", "headers": {"X-Key": HEADER_VALUE + "\n"}},
                    format="json"),
        APIClient().get("/v1/endpoints", HTTP_AUTHORIZATION=f"Bearer {handle.key}x"),
        APIClient().get("/v1/admin/tenants", HTTP_AUTHORIZATION=f"Bearer {settings.ADMIN_API_KEY}x"),
        client.get("/v1/admin/tenants"),
    ]
    for response in responses:
        assert response.status_code >= 400
    return [response.content for response in responses]


def admin_pages() -> list[bytes]:
    """Render the changelist and change page of every model registered in the Django admin."""
    staff = User.objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(staff)
    pages = []
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        pages.append(client.get(reverse("admin:%s_%s_changelist" % info)))
        first = model.objects.first()
        if first is not None:
            pages.append(client.get(reverse("admin:%s_%s_change" % info, args=[first.pk])))
    for page in pages:
        assert page.status_code == 200
    return [page.content for page in pages]


def database_dump() -> str:
    return subprocess.run(["pg_dump", "--data-only", database_url()], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.slow
def test_secrets_absent_everywhere(make_tenant, receiver, admin_api, start_worker, caplog):
    caplog.set_level(logging.DEBUG)
    handle = make_tenant("secretive")
    first_secret = generate_secret()
    endpoint = handle.create_endpoint(receiver.url("/s"), signing_secret=first_secret,
                                      headers={"X-Api-Token": HEADER_VALUE})
    rotated = handle.client.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret", {}, format="json")
    second_secret = rotated.json()["signing_secret"]
    extra_key = admin_api.post(f"/v1/admin/tenants/{handle.tenant.id}/api-keys").json()["key"]
    worker = start_worker()

    event_id = handle.send_event().json()["id"]
    request = receiver.wait_for(1)[0]
    standardwebhooks.Webhook(second_secret).verify(request.body, signed_headers(request))
    standardwebhooks.Webhook(first_secret).verify(request.body, signed_headers(request))
    delivery_id = handle.client.get(f"/v1/events/{event_id}").json()["deliveries"][0]["id"]
    ids = {"endpoint": endpoint["id"], "event": event_id, "delivery": delivery_id, "tenant": handle.tenant.id}

    secrets = [first_secret, second_secret, first_secret[6:], second_secret[6:], handle.key, extra_key,
               settings.ADMIN_API_KEY]
    bodies = {route: handle.client.get(route.format(**ids)).content for route in TENANT_GET_ROUTES}
    bodies.update({route: admin_api.get(route.format(**ids)).content for route in ADMIN_GET_ROUTES})
    for route, body in bodies.items():
        assert b"whsec_" not in body, route
        for secret in secrets:
            assert secret.encode() not in body, route
    for body in error_bodies(handle, ids, second_secret) + admin_pages():
        for secret in secrets:
            assert secret.encode() not in body
        assert HEADER_VALUE.encode() not in body

    worker.stop()
    logs = caplog.text + worker.output()
    assert "whsec_" not in logs
    for secret in secrets + [HEADER_VALUE]:
        assert secret not in logs
    dump = database_dump()
    for secret in secrets[:-1]:
        assert secret not in dump


def test_header_values_shown_only_on_endpoint(tenant, receiver):
    """Custom header values belong to the endpoint representation, nowhere else."""
    endpoint = tenant.create_endpoint(receiver.url("/h"), headers={"X-Api-Token": HEADER_VALUE})

    assert endpoint["headers"] == {"X-Api-Token": HEADER_VALUE}
    assert "signing_secret" not in tenant.client.get(f"/v1/endpoints/{endpoint['id']}").json()
    assert "signing_secret" not in tenant.client.get("/v1/endpoints").json()["results"][0]


def test_secrets_encrypted_at_rest(tenant, receiver):
    secret = tenant.create_endpoint(receiver.url("/h"))["signing_secret"]

    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_secret FROM endpoint_secrets")
        stored = [row[0] for row in cursor.fetchall()]

    assert len(stored) == 1
    assert secret not in stored[0]
    assert secret[6:] not in stored[0]


def test_rotate_encryption_key_reencrypts_all(tenant, receiver, settings):
    for path in ("/a", "/b", "/c"):
        tenant.create_endpoint(receiver.url(path))
    new_key = Fernet.generate_key().decode()
    settings.DISPATCHER_ENCRYPTION_KEYS = [new_key, *settings.DISPATCHER_ENCRYPTION_KEYS]
    output = []

    call_command("rotate_encryption_key", "--batch-size", "2", stdout=_Lines(output))

    only_new = MultiFernet([Fernet(new_key)])
    for row in EndpointSecret.objects.all():
        assert only_new.decrypt(row.encrypted_secret.encode()).startswith(b"whsec_")
    assert output[-1] == "re-encrypted 3 of 3 secrets; 0 undecryptable"


@pytest.mark.slow
def test_deliveries_verify_after_key_rotation(make_tenant, receiver, start_worker, settings):
    handle = make_tenant("rotation")
    secret = handle.create_endpoint(receiver.url("/r"))["signing_secret"]
    new_key = Fernet.generate_key().decode()
    settings.DISPATCHER_ENCRYPTION_KEYS = [new_key, *settings.DISPATCHER_ENCRYPTION_KEYS]
    call_command("rotate_encryption_key", stdout=_Lines([]))
    start_worker(env={"DISPATCHER_ENCRYPTION_KEYS": new_key})

    assert handle.send_event().status_code == 202
    request = receiver.wait_for(1)[0]

    standardwebhooks.Webhook(secret).verify(request.body, signed_headers(request))


class _Lines:
    """A minimal stdout for call_command that keeps each written line."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        return None
