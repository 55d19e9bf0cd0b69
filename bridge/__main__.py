"""`python -m bridge`: run one bridge process (any number may run in one consumer group)."""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="Consume customers/books/orders from Kafka and fan each record out as Celery "
        "tasks (store queue + audit queue); offsets are committed only after RabbitMQ "
        "confirmed the publishes.",
    )
    parser.parse_args()


if __name__ == "__main__":
    main()
