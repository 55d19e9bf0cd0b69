"""One module per store: each owns its schema, its idempotent batch write and its reads."""


class StoreUnavailable(RuntimeError):
    """The store cannot be reached now: the task retries later, the data is never dropped."""
