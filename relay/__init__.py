"""The relay: delivers the case store's outbox at least once to each configured destination (signed webhooks,
RabbitMQ with publisher confirms), remembering per destination the last sequence number the destination confirmed."""
