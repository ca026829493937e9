"""The consume loops: decode, claim, handle, publish, ack or dead-letter."""
