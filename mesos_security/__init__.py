"""Security shared by every component (ADR 0013): TLS configuration and certificates,
credentials, and Mesos' ACLs."""
