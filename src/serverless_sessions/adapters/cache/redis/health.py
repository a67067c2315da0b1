"""The server half of the Redis health report: version, role, memory, clients, cluster state.

Only fields read from ``INFO`` / ``CLUSTER INFO`` go in; the address comes from the settings'
secret-free description, so no password can reach a report.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

__all__ = ["server_report"]

_INFO_FIELDS = {
    "redis_version": "version",
    "role": "role",
    "used_memory": "used_memory",
    "used_memory_human": "used_memory_human",
    "maxmemory": "maxmemory",
    "connected_clients": "connected_clients",
    "uptime_in_seconds": "uptime_s",
}


def _pick(info: dict[str, Any]) -> dict[str, Any]:
    return {name: info[field] for field, name in _INFO_FIELDS.items() if field in info}


async def server_report(client: Any) -> dict[str, Any]:
    """Health fields of the server (of every master, in a cluster) behind ``client``."""
    if not isinstance(client, RedisCluster):
        return _pick(await client.info())
    state = await client.cluster_info(target_nodes=RedisCluster.RANDOM)
    per_node = await client.info(target_nodes=RedisCluster.PRIMARIES)
    nodes = {name: _pick(info) for name, info in per_node.items()}
    first = next(iter(nodes.values()), {})
    return {
        "version": first.get("version"),
        "role": "cluster",
        "cluster_state": state.get("cluster_state"),
        "cluster_known_nodes": state.get("cluster_known_nodes"),
        "cluster_size": state.get("cluster_size"),
        "used_memory": sum(int(node.get("used_memory", 0)) for node in nodes.values()),
        "masters": nodes,
    }
