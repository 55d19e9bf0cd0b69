"""The audit task (queue `audit`)."""
