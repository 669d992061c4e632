"""Django admin plumbing for tables with millions of rows: a cheap paginator and an id filter."""

import uuid

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property

# Rows a list page counts exactly. Past this the count is the planner's estimate or this cap.
EXACT_COUNT_CAP = 10000


def estimated_rows(table: str) -> int:
    """Return PostgreSQL's row estimate of a table from its last ANALYZE (-1 if never analyzed)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return int(row[0]) if row else -1


class BoundedCountPaginator(Paginator):
    """A paginator whose count reads at most EXACT_COUNT_CAP + 1 rows instead of the whole table.

    An unfiltered list on PostgreSQL uses the planner's estimate once the table is past the cap. A
    filtered list past the cap reports the cap, so its last pages are reached by narrowing the filter.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor == "postgresql" and not queryset.query.where:
            estimate = estimated_rows(queryset.model._meta.db_table)
            if estimate > EXACT_COUNT_CAP:
                return estimate
        return queryset[: EXACT_COUNT_CAP + 1].count()


class LargeTableAdmin(admin.ModelAdmin):
    """A ModelAdmin whose list pages run a fixed number of queries, however many rows the table has."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    # Facet counts would run one COUNT over the table per filter choice.
    show_facets = admin.ShowFacets.NEVER


class UUIDInputFilter(admin.SimpleListFilter):
    """A list filter with a text box for one id, where a list of every choice would be too long."""

    template = "admin/uuid_input_filter.html"
    # The model field the id is compared with, such as "tenant_id".
    field_name = ""

    def lookups(self, request, model_admin):
        # One placeholder choice makes the admin render the filter, and the template shows a text box.
        return [("", "")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(**{self.field_name: uuid.UUID(value.strip())})
        except ValueError:
            raise IncorrectLookupParameters(f"{self.parameter_name}={value!r} is not a UUID") from None

    def choices(self, changelist):
        # The form keeps every other parameter (filters, search, ordering) but starts again at page one.
        hidden = [
            (name, value) for name, values in self.request.GET.lists() if name not in (self.parameter_name, "p")
            for value in values
        ]
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "hidden": hidden,
            "clear_query_string": changelist.get_query_string(remove=[self.parameter_name]),
        }


class TenantIdFilter(UUIDInputFilter):
    title = "tenant"
    parameter_name = "tenant_id"
    field_name = "tenant_id"
