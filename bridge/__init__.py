"""The bridge: Kafka topics -> Celery tasks, committing offsets only after confirmed publishes."""
