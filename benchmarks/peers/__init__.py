"""What a user would write or pick instead of the relay, run against the same bus and upstream."""
