"""Running Mailtrap as a shared service: counters, /metrics, logs, health checks."""
