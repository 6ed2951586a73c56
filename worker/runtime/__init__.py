"""The worker's lifecycle: signal handlers, recovery, redelivery counting, privacy."""
