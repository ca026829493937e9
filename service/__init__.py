"""msgflash-relay: RabbitMQ commands to MsgFlash (WhatsApp), MsgFlash webhooks back to the bus."""

__version__ = "0.1.0"
