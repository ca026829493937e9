"""MsgFlash HTTP adapter: client, retry policy, pacing, instance resolution."""
