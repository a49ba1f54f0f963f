# Switchboard in a container, built from the same requirements as `make run`.
#   docker build -t switchboard . && docker run -p 5000:5000 -e OPENAI_API_KEY=... switchboard
# With PostgreSQL and Redis beside it: `docker compose up --build` (compose.yaml).
# The test suite in the same image: `docker compose run --rm switchboard make test` (as a
# non-root user it skips the tests that need redis-server and PostgreSQL binaries).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=5000 \
    SWITCHBOARD_DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --home-dir /srv/switchboard switchboard \
    && mkdir -p /data && chown switchboard /data
WORKDIR /srv/switchboard
COPY --chown=switchboard requirements.txt requirements-test.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=switchboard . .
USER switchboard
VOLUME ["/data"]
EXPOSE 5000
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
