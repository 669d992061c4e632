import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from tenants import services as tenant_services
from tests.harness import ConnectionCanary, Receiver, WorkerProcess


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def admin_api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.ADMIN_API_KEY}")
    return client


class TenantHandle:
    def __init__(self, name: str, **overrides):
        self.tenant, self.api_key, self.key = tenant_services.create_tenant(name, **overrides)
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")

    def create_endpoint(self, url: str, **fields) -> dict:
        response = self.client.post("/v1/endpoints", {"url": url, **fields}, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    def send_event(self, event_type: str = "order.created", payload: dict | None = None, **headers):
        body = {"type": event_type, "payload": payload if payload is not None else {"n": 1}}
        return self.client.post("/v1/events", body, format="json", **headers)


@pytest.fixture
def make_tenant(db):
    return TenantHandle


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def canaries():
    listeners = [ConnectionCanary("127.0.0.2"), ConnectionCanary("127.0.0.3")]
    yield listeners
    for listener in listeners:
        listener.close()


@pytest.fixture
def broker():
    """The test broker's Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def start_worker(transactional_db, broker):
    """Start real worker subprocesses; every one is stopped when the test ends."""
    started = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(**kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
