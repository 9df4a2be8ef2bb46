# The product's image: `durable worker` by default; any other `durable` command (e.g.
# `migrate`) as the container's command. Used by docker-compose.yml for `worker` and `migrate`.
#
#   docker build -t rensei-durable:0.1.0 .
#   docker run --rm -e TEMPORAL_ADDRESS=... -e DATABASE_URL=... rensei-durable:0.1.0
#   docker run --rm -e DATABASE_URL=... rensei-durable:0.1.0 migrate

# Pinned: Python 3.11 (pyproject's requires-python) on Debian bookworm, whose glibc the
# manylinux wheels (temporalio, asyncpg) need.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DURABLE_LOG_FORMAT=json

# .dockerignore keeps tests, benchmarks, virtualenvs and local data out of the context.
COPY . /src
RUN pip install /src \
    && useradd --create-home --uid 10001 --user-group durable

USER durable
WORKDIR /home/durable

# Exec form: `durable` gets SIGTERM itself and shuts the worker down gracefully (running steps
# get DURABLE_GRACEFUL_SHUTDOWN_SECONDS to finish). Give the container a longer stop timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["durable"]
CMD ["worker"]
