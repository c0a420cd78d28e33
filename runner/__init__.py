"""dp-runner: a task runner for AWS Data Pipeline, with a local service."""

__version__ = "0.1.0"
