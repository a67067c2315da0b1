"""Write actions of the DynamoDB adapter and the conditions that make them safe.

An action is one ``TransactWriteItems`` element (``{"Put": {...}}`` or ``{"Delete": {...}}``);
alone, the same parameters make one ``PutItem``/``DeleteItem``
(:meth:`~.connection.Connection.commit`). Conditions name every attribute through a placeholder:
several of ours (``ttl``, ...) are reserved words in expressions.
"""

from __future__ import annotations

from typing import Any

from serverless_sessions.adapters.cache.dynamodb.layout import Record, number

__all__ = ["Action", "delete", "put", "unchanged"]

Action = dict[str, Any]
"""One ``TransactWriteItems`` element: ``{"Put": {...}}`` or ``{"Delete": {...}}``."""


def put(table: str, item: dict[str, Any], **condition: Any) -> Action:
    """Write ``item`` (on ``condition``, if given)."""
    return {"Put": {"TableName": table, "Item": item, **condition}}


def delete(table: str, pk: str, sk: str, **condition: Any) -> Action:
    """Delete the item at ``pk``/``sk`` (on ``condition``, if given)."""
    return {"Delete": {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": sk}}, **condition}}


def unchanged(record: Record | None, *, live_at: float | None) -> dict[str, Any]:
    """Condition: the item is still the one read as ``record`` (``None``: still absent).

    The write token changes on every write, so this fails after any write since the read, even
    one that re-created the key at the same version. With ``live_at``, the item must also not
    have expired by then (a compare-and-set on a key that expired meanwhile is a conflict).
    """
    if record is None:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    condition = "#t = :t"
    names, values = {"#t": "tok"}, {":t": {"S": record.token}}
    if live_at is not None and record.expires_at is not None:
        condition += " AND #e > :now"
        names["#e"] = "exp"
        values[":now"] = number(live_at)
    return {
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
