"""Keyset pages over rows ordered by (created_at, id): no OFFSET, so a page deep in a
million rows costs what the first one does."""

from datetime import datetime

from django.db.models import QuerySet

Cursor = tuple[datetime, int]


def page_after(rows: QuerySet, cursor: Cursor | None, *, newest_first: bool) -> QuerySet:
    """`rows` past `cursor` (the previous page's last (created_at, id)), in page order.
    The plain bound on created_at is what lets PostgreSQL start its index range at the
    cursor; the (created_at = at AND id past pk) rows are then excluded on the way."""
    order = ("-created_at", "-id") if newest_first else ("created_at", "id")
    if cursor is not None:
        at, pk = cursor
        if newest_first:
            rows = rows.filter(created_at__lte=at).exclude(created_at=at, id__gte=pk)
        else:
            rows = rows.filter(created_at__gte=at).exclude(created_at=at, id__lte=pk)
    return rows.order_by(*order)


def first_page(rows: QuerySet, size: int) -> tuple[list, bool]:
    """The first `size` of `rows`, and whether more follow (read as one row more, so no
    count and no second query)."""
    found = list(rows[: size + 1])
    return found[:size], len(found) > size
