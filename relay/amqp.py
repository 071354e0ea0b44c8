"""RabbitMQ: a message published persistent (delivery_mode 2), mandatory, on a channel in confirm mode, so a
publish returns only when the broker has taken responsibility for it (a nack or an unroutable message is a failed
attempt). The exchange and queue a destination names are declared durable (and bound) when the relay connects."""

from __future__ import annotations

import time

import pika
import pika.exceptions

from relay.destinations import Destination
from relay.webhook import DeliveryFailed

CONTENT_TYPE = "application/json"
TYPE = "arrears.contact"


class Publisher:
    """One destination's connection, made when first needed and again after a failure."""

    def __init__(self, destination: Destination, timeout: float) -> None:
        self.destination = destination
        self.timeout = timeout
        self._connection = None
        self._channel = None

    def _open(self):
        if self._channel is not None and self._channel.is_open:
            return self._channel
        d = self.destination
        parameters = pika.URLParameters(d.url)
        parameters.socket_timeout = parameters.blocked_connection_timeout = self.timeout
        self._connection = pika.BlockingConnection(parameters)
        channel = self._connection.channel()
        channel.confirm_delivery()
        if d.exchange:
            channel.exchange_declare(d.exchange, exchange_type="direct", durable=True)
        if d.queue:
            channel.queue_declare(d.queue, durable=True)
            if d.exchange:
                channel.queue_bind(d.queue, d.exchange, routing_key=d.routing_key)
        self._channel = channel
        return channel

    def publish(self, body: bytes, message: dict) -> None:
        """Publish and wait for the broker's confirm; `DeliveryFailed` if it does not come."""
        properties = pika.BasicProperties(
            content_type=CONTENT_TYPE, delivery_mode=pika.DeliveryMode.Persistent, message_id=message["message_id"],
            type=TYPE, timestamp=int(time.time()), headers={"seq": int(message["seq"])})
        try:
            self._open().basic_publish(self.destination.exchange, self.destination.routing_key, body, properties,
                                       mandatory=True)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass
