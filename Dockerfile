# syntax=docker/dockerfile:1

# The canvas bundle and the shared CSS / JS (static/build/ is not in git).
FROM node:22-slim AS assets
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim

# PYTHONPATH: `pip install .` also puts config/leads/... into site-packages, where
# BASE_DIR would point at site-packages and templates/ and static/ would be missing.
# /app first on the path makes every process (gunicorn, celery, manage.py) run the
# copy that sits next to templates/ and static/.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    LEADFLOW_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

# Fixed uid/gid so a bind-mounted /data can be chowned to match from the host. An
# empty named volume mounted on /data takes this directory's owner, so the app user
# can write the beat schedule, uploads and generated secrets there.
RUN groupadd --system --gid 1000 leadflow \
    && useradd --system --uid 1000 --gid leadflow --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin leadflow \
    && mkdir /data \
    && chown leadflow:leadflow /data

WORKDIR /app

# Dependencies first, from pyproject.toml alone (no packages yet, so this installs an
# empty leadflow plus its requirements): code changes then reuse this layer.
COPY pyproject.toml ./
RUN pip install . && rm -rf build leadflow.egg-info

COPY manage.py ./
COPY config ./config
COPY leads ./leads
COPY scoring ./scoring
COPY flows ./flows
COPY templates ./templates
COPY static ./static
COPY --from=assets /src/static/build ./static/build
RUN pip install --no-deps . && rm -rf build leadflow.egg-info

# Static files are collected (and compressed) into the image, not the /data volume,
# so every new image serves its own.
RUN mkdir /app/staticfiles && chown leadflow:leadflow /app/staticfiles

USER leadflow

# Settings need SECRET_KEY to import, and without ANYMAIL_WEBHOOK_SECRET they would
# generate one into /data, which Docker then copies into a fresh volume: both get
# throwaway values that exist only for this step, so no secret ends up in the image.
RUN SECRET_KEY=collectstatic-build-only ANYMAIL_WEBHOOK_SECRET=collectstatic-build-only \
    python manage.py collectstatic --noinput

EXPOSE 8000

# Workers, keep-alive and an access log that leaves out API keys: config/gunicorn.py.
CMD ["gunicorn", "--config", "config/gunicorn.py", "config.wsgi:application"]
