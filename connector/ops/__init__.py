"""On-call tooling: replay, health, metrics, structured logs."""
