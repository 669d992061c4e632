"""The create_tenant and listen commands, run as a user would."""

import os
import socket
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deliveries import services
from tenants.models import ApiKey, Tenant
from tests.harness import ROOT


def test_create_tenant_prints_id_and_key_once(db, capsys, api):
    call_command("create_tenant", "Acme Shop")
    output = capsys.readouterr().out
    tenant = Tenant.objects.get(name="Acme Shop")
    assert f"tenant_id={tenant.id}" in output
    key = next(line.split("=", 1)[1] for line in output.splitlines() if line.startswith("api_key="))
    assert ApiKey.objects.get(tenant=tenant).prefix == key[:12]
    assert key not in str(list(ApiKey.objects.values()))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/v1/events").status_code == 200


def test_create_tenant_rejects_blank_name(db):
    with pytest.raises(CommandError, match="invalid"):
        call_command("create_tenant", "   ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def listener(tenant):
    port = free_port()
    endpoint = tenant.create_endpoint(f"http://127.0.0.1:{port}/hook")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "listen", "--port", str(port), "--secret", endpoint["signing_secret"]],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield process
    process.terminate()


def test_listen_verifies_a_delivery(tenant, listener):
    response = tenant.send_event("order.created", {"order_id": 42})
    services.fan_out_pending()
    services.dispatch_due()
    listener.terminate()
    output, errors = listener.communicate(timeout=10)
    assert f"VERIFIED {response.json()['id']} type=order.created" in output
    assert "REJECTED" not in errors


def test_listen_rejects_a_malformed_secret():
    result = subprocess.run([sys.executable, "manage.py", "listen", "--secret", "whsec_!!!!"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "not valid base64" in result.stderr
