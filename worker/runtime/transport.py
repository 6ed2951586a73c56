"""Which broker transport a lifecycle mechanism serves, and whether this worker runs on it.

The Redis transport keeps a taken job in its ``unacked`` hash until the visibility
timeout; the mechanisms that make up for that (node liveness and the node-loss sweep,
stranded-job recovery) declare ``TRANSPORT = REDIS`` and are connected only on a Redis
broker. RabbitMQ returns a lost consumer's deliveries itself, at once.
"""

from __future__ import annotations

from kombu import Connection

__all__ = ["AMQP", "REDIS", "broker_transport"]

REDIS = "redis"
AMQP = "amqp"


def broker_transport(broker_url: str) -> str:
    """kombu's driver type for ``broker_url`` (``redis`` also for ``sentinel://``); no connection is made."""
    return str(Connection(broker_url).transport.driver_type)
