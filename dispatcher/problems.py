"""RFC 9457 problem+json errors with a stable `code`, rendered by one DRF exception handler."""

import logging

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(exceptions.APIException):
    """An API error with an HTTP status, a title, a stable code and optional headers."""

    def __init__(self, status_code: int, code: str, title: str, detail: str, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.title = title
        self.problem_code = code
        self.headers = headers or {}
        self.extra = extra or {}


def bad_request(detail: str, code: str = "invalid_request", errors: dict | None = None) -> Problem:
    return Problem(400, code, "Invalid request", detail, extra={"errors": errors} if errors else None)


def not_found(detail: str = "not found") -> Problem:
    return Problem(404, "not_found", "Not found", detail)


def conflict(detail: str, code: str = "conflict", headers: dict | None = None) -> Problem:
    return Problem(409, code, "Conflict", detail, headers)


def unprocessable(detail: str, code: str, errors: dict | None = None) -> Problem:
    return Problem(422, code, "Rejected by a rule", detail, extra={"errors": errors} if errors else None)


def problem_response(status_code: int, code: str, title: str, detail: str, headers: dict | None = None,
                     extra: dict | None = None) -> JsonResponse:
    body = {"type": "about:blank", "title": title, "status": status_code, "code": code, "detail": detail}
    body.update(extra or {})
    response = JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


_STANDARD = {
    exceptions.ParseError: (400, "malformed_json", "Malformed request body"),
    exceptions.UnsupportedMediaType: (415, "unsupported_media_type", "Unsupported media type"),
    exceptions.NotAuthenticated: (401, "unauthorized", "Unauthorized"),
    exceptions.AuthenticationFailed: (401, "unauthorized", "Unauthorized"),
    exceptions.PermissionDenied: (403, "forbidden", "Forbidden"),
    exceptions.NotFound: (404, "not_found", "Not found"),
    exceptions.MethodNotAllowed: (405, "method_not_allowed", "Method not allowed"),
    exceptions.NotAcceptable: (406, "not_acceptable", "Not acceptable"),
    exceptions.ValidationError: (400, "invalid_request", "Invalid request"),
    exceptions.Throttled: (429, "rate_limited", "Too many requests"),
}


def problem_exception_handler(exc, context):
    """Render every API error as problem+json; unknown exceptions stay 500 and are logged by Django."""
    if isinstance(exc, Problem):
        return problem_response(exc.status_code, exc.problem_code, exc.title, str(exc.detail), exc.headers,
                                exc.extra)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None
    status_code, code, title = _STANDARD.get(type(exc), (response.status_code, "error", "Error"))
    extra = {}
    if isinstance(exc, exceptions.ValidationError):
        extra["errors"] = exc.detail
        detail = _first_message(exc.detail)
    else:
        detail = str(getattr(exc, "detail", "")) or title.lower()
    headers = {name: value for name, value in response.items() if name in ("Retry-After", "Allow", "WWW-Authenticate")}
    return problem_response(status_code, code, title, detail, headers, extra)


def _first_message(detail) -> str:
    """Return 'field: message' for the first validation error, for the human-readable detail."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def handler404(request, exception=None):
    return problem_response(status.HTTP_404_NOT_FOUND, "not_found", "Not found", f"no route for {request.path}")


def handler400(request, exception=None):
    return problem_response(400, "bad_request", "Bad request", "the request was rejected; check the Host header "
                            "against ALLOWED_HOSTS and the request syntax")


def handler500(request):
    logger.error("unhandled error on %s %s", request.method, request.path)
    return problem_response(500, "internal_error", "Internal server error", "unexpected error; it has been logged")
