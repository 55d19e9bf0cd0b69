"""Kafka topic names and which Celery queue (store) each one feeds."""

CUSTOMERS = "customers"
BOOKS = "books"
ORDERS = "orders"
DEAD_LETTERS = "dead-letters"

ENTITY_TOPICS = (CUSTOMERS, BOOKS, ORDERS)
ALL_TOPICS = (*ENTITY_TOPICS, DEAD_LETTERS)

# topic -> Celery queue of the store that persists it
STORE_QUEUE = {CUSTOMERS: "postgres", BOOKS: "mongo", ORDERS: "redis"}
AUDIT_QUEUE = "audit"
GENERATE_QUEUE = "generate"
