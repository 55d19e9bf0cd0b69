# The app image: every product process (workers, beat, bridge, Flower, the CLI) runs from it.
FROM python:3.11.16-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Requirements first, in their own layer: code changes do not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# A non-root user; the state directories exist in the image so that named volumes mounted there
# start out owned by it.
RUN useradd --system --uid 10001 --gid 0 --home-dir /app --no-create-home bookstore \
    && mkdir -p /var/lib/bookstore/audit /var/lib/bookstore/beat \
    && chown -R bookstore:0 /var/lib/bookstore

# The code stays root-owned: the app user can read it, not change it.
COPY . .

USER 10001
ENV AUDIT_LOG_PATH=/var/lib/bookstore/audit/messages.log
# Flower reads flowerconfig.py from the working directory (/app).
CMD ["celery", "-A", "tasks", "worker", "-E", "--loglevel=INFO"]
