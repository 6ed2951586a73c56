"""Benchmarks that print figures. Never part of the tests' pass/fail."""
