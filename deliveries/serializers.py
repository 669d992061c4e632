from deliveries.models import Delivery, DeliveryAttempt


def delivery_to_dict(delivery: Delivery) -> dict:
    return {
        "id": str(delivery.id),
        "event_id": str(delivery.event_id),
        "endpoint_id": str(delivery.endpoint_id),
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error or None,
        "dead_reason": delivery.dead_reason or None,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
    }


def attempt_to_dict(attempt: DeliveryAttempt) -> dict:
    return {
        "number": attempt.number,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "error_kind": attempt.error_kind or None,
        "error_message": attempt.error_message or None,
        "response_body": attempt.response_body,
        "response_truncated": attempt.response_truncated,
    }
