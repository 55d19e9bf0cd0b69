"""Kafka topic names, the Celery queue of each store, and the task names the bridge sends."""

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
CELERY_QUEUES = (*STORE_QUEUE.values(), AUDIT_QUEUE, GENERATE_QUEUE)
PARKED_QUEUE = "parked"  # tasks that must not run again until an operator requeues them

# topic -> name of its persistence task; the bridge sends by name, without importing the tasks
STORE_TASK = {
    CUSTOMERS: "tasks.persist.store_customers",
    BOOKS: "tasks.persist.store_books",
    ORDERS: "tasks.persist.store_orders",
}
AUDIT_TASK = "tasks.audit.record_messages"
