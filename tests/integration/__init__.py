"""Integration tests: real processes on loopback, driven through the real CLI."""
