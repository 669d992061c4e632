"""Bad input to every route gets a 4xx problem+json with a stable code, and stores nothing."""

import uuid

import pytest

from deliveries.models import Delivery
from endpoints.models import Endpoint
from events.models import Event
from tenants.models import Tenant

MALFORMED_BODIES = [b"{", b"not json", b"\xff\xfe", b'{"type": "a", "payload": NaN}', b"[1, 2]", b'"text"', b"null"]


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["detail"]
    if code:
        assert body["code"] == code
    return body


def row_counts() -> tuple:
    return Tenant.objects.count(), Endpoint.objects.count(), Event.objects.count(), Delivery.objects.count()


@pytest.mark.parametrize("body", MALFORMED_BODIES)
@pytest.mark.parametrize("path", ["/v1/events", "/v1/endpoints"])
def test_malformed_body_is_400(tenant, path, body):
    before = row_counts()
    response = tenant.client.generic("POST", path, body, content_type="application/json")
    assert_problem(response, 400)
    assert row_counts() == before


@pytest.mark.parametrize("body", MALFORMED_BODIES)
def test_malformed_admin_body_is_400(admin_api, db, body):
    response = admin_api.generic("POST", "/v1/admin/tenants", body, content_type="application/json")
    assert_problem(response, 400)
    assert Tenant.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "", "payload": {}}, "invalid_request"),
        ({"type": "a" * 129, "payload": {}}, "invalid_request"),
        ({"type": "has space", "payload": {}}, "invalid_request"),
        ({"type": 5, "payload": {}}, "invalid_request"),
        ({"type": None, "payload": {}}, "invalid_request"),
        ({"type": ["a"], "payload": {}}, "invalid_request"),
        ({"payload": {}}, "invalid_request"),
        ({"type": "a.b"}, "invalid_request"),
        ({"type": "a.b", "payload": "text"}, "invalid_request"),
        ({"type": "a.b", "payload": [1]}, "invalid_request"),
        ({"type": "a.b", "payload": {}, "tenant": "other"}, "unknown_fields"),
        ({"type": "a.b", "payload": {}, "id": str(uuid.uuid4())}, "unknown_fields"),
    ],
)
def test_invalid_event_is_400(tenant, body, code):
    response = tenant.client.post("/v1/events", body, format="json")
    assert_problem(response, 400, code)
    assert Event.objects.count() == 0


def test_type_at_length_limit_is_accepted(tenant):
    assert tenant.send_event("a" * 128).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": 5},
        {"url": None},
        {"url": ["http://x"]},
        {"url": "http://127.0.0.1:9/", "enabled": "yes"},
        {"url": "http://127.0.0.1:9/", "description": 7},
        {"url": "http://127.0.0.1:9/", "event_types": "order.*"},
        {"url": "http://127.0.0.1:9/", "event_types": [1]},
        {"url": "http://127.0.0.1:9/", "headers": ["X-A"]},
        {"url": "http://127.0.0.1:9/", "id": str(uuid.uuid4())},
        {"url": "http://127.0.0.1:9/", "tenant": "other"},
        {"url": "http://127.0.0.1:9/", "disabled_reason": "x"},
    ],
)
def test_invalid_endpoint_is_400(tenant, body):
    response = tenant.client.post("/v1/endpoints", body, format="json")
    assert_problem(response, 400)
    assert Endpoint.objects.count() == 0


@pytest.mark.parametrize("event_types", [["order.**"], ["a b"], ["*.order"], ["x" * 200]])
def test_invalid_event_filter_is_422(tenant, event_types):
    response = tenant.client.post("/v1/endpoints", {"url": "http://127.0.0.1:9/", "event_types": event_types},
                                  format="json")
    assert_problem(response, 422, "invalid_event_types")
    assert Endpoint.objects.count() == 0


def test_invalid_patch_changes_nothing(tenant, receiver):
    endpoint = tenant.create_endpoint(receiver.url())
    for body in ({"enabled": "no"}, {"url": 3}, {"id": str(uuid.uuid4())}, {"event_types": "x"}):
        response = tenant.client.patch(f"/v1/endpoints/{endpoint['id']}", body, format="json")
        assert_problem(response, 400)
    stored = Endpoint.objects.get(id=endpoint["id"])
    assert stored.enabled is True
    assert stored.url == receiver.url()
    assert stored.event_types == []


@pytest.mark.parametrize("object_id", [str(uuid.uuid4()), "not-a-uuid", "1", "' OR 1=1 --"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/endpoints/{}"),
        ("patch", "/v1/endpoints/{}"),
        ("delete", "/v1/endpoints/{}"),
        ("post", "/v1/endpoints/{}/rotate-secret"),
        ("get", "/v1/events/{}"),
        ("get", "/v1/deliveries/{}"),
        ("get", "/v1/deliveries/{}/attempts"),
    ],
)
def test_unknown_object_is_404(tenant, method, path, object_id):
    response = getattr(tenant.client, method)(path.format(object_id), {}, format="json")
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    "query",
    ["since=yesterday", "until=2026-13-40", "since=1e9"],
)
def test_bad_event_query_is_400(tenant, query):
    assert_problem(tenant.client.get(f"/v1/events?{query}"), 400, "invalid_query")


@pytest.mark.parametrize("query", ["status=done", "event_id=xyz", "endpoint_id=1"])
def test_bad_delivery_query_is_400(tenant, query):
    assert_problem(tenant.client.get(f"/v1/deliveries?{query}"), 400, "invalid_query")


def test_bad_cursor_is_404_not_500(tenant):
    response = tenant.client.get("/v1/events?cursor=garbage")
    assert response.status_code in (400, 404)
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer pdk_unknown", "Bearer " + "x" * 5000])
def test_bad_credentials_are_401(api, db, header):
    if header:
        api.credentials(HTTP_AUTHORIZATION=header)
    assert_problem(api.get("/v1/events"), 401, "unauthorized")
    assert_problem(api.post("/v1/admin/tenants", {"name": "x"}, format="json"), 401, "unauthorized")


def test_unknown_route_is_problem(tenant):
    assert_problem(tenant.client.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405(tenant):
    assert_problem(tenant.client.put("/v1/events", {}, format="json"), 405, "method_not_allowed")


def test_admin_tenant_input_checked(admin_api, db):
    for body in ({"name": ""}, {"name": 5}, {"name": "a", "max_endpoints": "10"}, {"name": "a", "max_endpoints": -1},
                 {"name": "a", "disabled": "true"}, {"name": "a", "id": str(uuid.uuid4())}):
        assert_problem(admin_api.post("/v1/admin/tenants", body, format="json"), 400)
    assert Tenant.objects.count() == 0


@pytest.mark.parametrize("number", [b"1e999", b"-1e400", b"123e9999"])
def test_out_of_range_number_is_400(tenant, number):
    body = b'{"type": "inf.t", "payload": {"x": ' + number + b"}}"
    response = tenant.client.generic("POST", "/v1/events", body, content_type="application/json")
    assert_problem(response, 400, "malformed_json")
    assert Event.objects.count() == 0
    assert tenant.client.get("/v1/events").status_code == 200


def test_lone_surrogate_in_payload_is_400(tenant):
    body = b'{"type": "sur.t", "payload": {"x": "\\ud800"}}'
    response = tenant.client.generic("POST", "/v1/events", body, content_type="application/json")
    assert_problem(response, 400, "malformed_json")
    assert Event.objects.count() == 0


def test_paired_surrogates_are_accepted(tenant):
    body = b'{"type": "emoji.t", "payload": {"x": "\\ud83d\\ude0a"}}'
    response = tenant.client.generic("POST", "/v1/events", body, content_type="application/json")
    assert response.status_code == 202


def test_lone_surrogate_in_text_fields_is_400(tenant, admin_api):
    body = b'{"url": "http://127.0.0.1:9/", "description": "\\udfff"}'
    assert_problem(tenant.client.generic("POST", "/v1/endpoints", body, content_type="application/json"), 400)
    body = b'{"name": "x\\ud800"}'
    assert_problem(admin_api.generic("POST", "/v1/admin/tenants", body, content_type="application/json"), 400)
    assert Endpoint.objects.count() == 0


@pytest.mark.parametrize("path", ["/v1/events?type=a%00b", "/v1/dlq?reason=a%00b", "/v1/deliveries?status=%00",
                                  "/v1/endpoints?x%00=1"])
def test_nul_in_query_is_400(tenant, path):
    assert_problem(tenant.client.get(path), 400, "invalid_query")


@pytest.mark.parametrize("path", ["/v1/events?type=has%20space", "/v1/dlq?reason=nope"])
def test_unknown_filter_value_is_400(tenant, path):
    assert_problem(tenant.client.get(path), 400, "invalid_query")


def test_unknown_replay_reason_is_400(tenant, admin_api):
    response = tenant.client.post("/v1/dlq/replay", {"reason": "bogus"}, format="json")
    assert_problem(response, 400)
    assert_problem(admin_api.post("/v1/admin/dlq/replay", {"reason": "bogus"}, format="json"), 400)


def test_url_too_long_once_encoded_is_422(tenant):
    url = "http://127.0.0.1:9100/" + "é" * 1000
    assert len(url) < 2048
    response = tenant.client.post("/v1/endpoints", {"url": url}, format="json")
    assert_problem(response, 422, "invalid_url")
    assert Endpoint.objects.count() == 0


def test_chunked_event_body_is_411(tenant):
    response = tenant.client.generic("POST", "/v1/events", b"", content_type="application/json",
                                     HTTP_TRANSFER_ENCODING="chunked")
    assert_problem(response, 411, "length_required")


@pytest.mark.parametrize("headers", [{"Accept-Encoding": "gzip"}, {"X-Pad": " value"}, {"X-Pad": "value\t"}])
def test_unsafe_custom_header_is_422(tenant, headers):
    response = tenant.client.post("/v1/endpoints", {"url": "http://127.0.0.1:9/", "headers": headers}, format="json")
    assert_problem(response, 422, "invalid_headers")
    assert Endpoint.objects.count() == 0


def test_lone_surrogate_header_value_is_422(tenant):
    body = b'{"url": "http://127.0.0.1:9/", "headers": {"X-Uni": "\\udc00"}}'
    response = tenant.client.generic("POST", "/v1/endpoints", body, content_type="application/json")
    assert_problem(response, 422, "invalid_headers")


@pytest.mark.parametrize("path", ["/v1/events", "/v1/dlq", "/v1/deliveries"])
@pytest.mark.parametrize("value", ["2026-12-04", "2026-12-04T10:00:00", "2026-12-04T10:00:00%2B05:00",
                                   "2026-12-04T10:00:00Z"])
def test_date_and_zoneless_filters_accepted(tenant, path, value):
    response = tenant.client.get(f"{path}?since={value}&until={value}")
    assert response.status_code == 200, response.content
