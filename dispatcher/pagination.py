from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Cursor pages over the newest rows first; `limit` picks the page size (at most 200)."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "limit"
    max_page_size = 200
