# battsim serve in a container: python slim, a non-root user, recordings in a volume, listening on $PORT.
# Not built or tested on the project's machines (no registry is reachable there); the start command and the
# environment handling it relies on are tested (tests/test_serve_env.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY src ./src
# The lock pins every dependency (its test extras are not installed: -c only constrains).
RUN pip install -c requirements.lock . \
    && useradd --create-home --uid 10001 battsim \
    && mkdir /data && chown battsim /data

USER battsim
# Beyond loopback battsim needs a token: give BATTSIM_TOKEN at run time, and BATTSIM_ALLOWED_HOSTS the
# name clients reach it by. The platform's PORT wins over this default; BATTSIM_PORT over both.
ENV BATTSIM_HOST=0.0.0.0 BATTSIM_DATA_DIR=/data BATTSIM_FORWARDED_ALLOW_IPS=* PORT=8003
VOLUME ["/data"]
EXPOSE 8003
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % (os.environ.get('BATTSIM_PORT') or os.environ.get('PORT') or '8003'), timeout=4)"
CMD ["battsim", "serve"]
