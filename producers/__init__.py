"""What client apps import: loggers that publish exposures and events to Kafka, never blocking the app."""
