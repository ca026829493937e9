"""RabbitMQ adapter: topology, publishing with confirms, connection supervision."""
