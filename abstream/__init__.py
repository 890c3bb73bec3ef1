"""abstream: exposure logging for online experiments on Kafka.

This package holds what every role shares (errors, settings, the CLI). The roles live beside it:
``schemas`` (the wire contract), ``producers`` (client loggers), ``stream_jobs`` (Faust),
``sinks`` (ClickHouse) and ``deploy`` (how it runs).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
