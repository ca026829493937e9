"""Traces: the spans the relay makes (``spans``) and the SDK that exports them (``export``)."""
