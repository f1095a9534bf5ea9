"""The fault matrix: every Task state of the canary state machine under every kind of failure."""
