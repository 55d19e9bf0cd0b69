"""One module per store: each owns its schema, its idempotent batch write and its reads."""
