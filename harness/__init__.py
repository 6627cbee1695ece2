"""pattern-harness: measured claims of backend system-design patterns."""
