"""schemagate: PostgreSQL schema migrations as a safe, visible step of every Kubernetes rollout."""

__version__ = "0.1.0"
