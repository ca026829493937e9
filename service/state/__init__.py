"""Idempotency, correlation and dedupe state behind one small interface."""
