# One image for every module's target and for Locust (master and workers); see compose.yaml.
# Build: docker build -t pattern-harness:local .   (compose builds it for you)
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies ship as wheels (psycopg[binary], hiredis, uvloop, httptools, gevent, hdrhistogram),
# so the slim image needs no compiler. The distribution carries harness/, targets/, locustfiles/ and
# dashboards/; /app holds the same files, so `locust -f locustfiles/<module>.py` works from here.
COPY . /app
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group harness

USER harness

EXPOSE 8089 5557 19646

# The target of the module named by HARNESS_MODULE, on HARNESS_TARGET_PORT (compose sets both per
# target service); Locust services give their own command.
ENV HARNESS_TARGET_PORT=8000
CMD ["sh", "-c", "exec uvicorn \"targets.${HARNESS_MODULE:?set HARNESS_MODULE to a module id}:app\" --host 0.0.0.0 --port \"$HARNESS_TARGET_PORT\" --loop uvloop --http httptools --no-access-log"]
