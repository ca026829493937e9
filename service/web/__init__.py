"""The relay's HTTP side: webhooks, ingress, health, metrics, OpenAPI."""
