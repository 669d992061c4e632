import json

from events.models import Event


def event_to_dict(event: Event, deliveries: list | None = None) -> dict:
    data = {
        "id": str(event.id),
        "type": event.type,
        "payload": json.loads(event.body)["data"],
        "created_at": event.created_at,
        "status": "fanned_out" if event.fanned_out_at else "accepted",
    }
    if deliveries is not None:
        data["deliveries"] = deliveries
    return data
