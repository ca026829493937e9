"""MsgFlash simulator: the embedded default for local runs and the peer in tests."""
