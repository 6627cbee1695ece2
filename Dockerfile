# One image for the targets and for Locust (master and workers); see compose.yaml.
# Build: docker build -t pattern-harness:local .   (compose builds it for you)
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies ship as wheels (psycopg[binary], hiredis, uvloop, httptools, gevent, hdrhistogram),
# so the slim image needs no compiler. `targets/` and `locustfiles/` are not part of the installed
# distribution: they are run from /app (uvicorn and locust put the working directory on sys.path).
COPY . /app
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group harness

USER harness

EXPOSE 18101 8089 5557 19646

# Each compose service gives its own command; this default serves the scaling_reads target.
CMD ["uvicorn", "targets.scaling_reads:app", "--host", "0.0.0.0", "--port", "18101", \
     "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
