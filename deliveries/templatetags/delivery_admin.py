"""Template tags of the Django admin index: delivery counts by status."""

import datetime as dt

from django import template
from django.db.models import Count
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus

register = template.Library()


@register.simple_tag
def delivery_status_counts(hours: int = 24) -> list[tuple[str, str, int]]:
    """Return (status, label, count) of the deliveries created in the last `hours`, one row per status."""
    since = timezone.now() - dt.timedelta(hours=hours)
    rows = Delivery.objects.filter(created_at__gte=since).order_by().values("status").annotate(count=Count("id"))
    counts = {row["status"]: row["count"] for row in rows}
    return [(value, label, counts.get(value, 0)) for value, label in DeliveryStatus.choices]
