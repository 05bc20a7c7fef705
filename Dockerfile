# The phoenix-resume worker image: the installed project (no dev extra), run as a non-root user.
#
#   docker build -t phoenix-resume-stream .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 -e PHOENIX_HOST=http://phoenix:6006 \
#       -e RESUME_TASK_MODULES=myteam.tasks phoenix-resume-stream worker --role tasks
#
# Configuration is the settings model's environment only (PHOENIX_*, KAFKA_BOOTSTRAP_SERVERS,
# RESUME_*; see config/settings.py). Task modules are imported from /app (on PYTHONPATH):
# build FROM this image and COPY your package there, or pip install it, and name it in
# RESUME_TASK_MODULES. The demo tasks (examples.demo_tasks) are included.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project with the exact dependency set it was tested with (constraints.txt).
WORKDIR /build
COPY pyproject.toml README.md constraints.txt ./
COPY config/ config/
COPY streams/ streams/
COPY producers/ producers/
RUN pip install -c constraints.txt . \
    && cd / && rm -rf /build

WORKDIR /app
COPY examples/ examples/
ENV PYTHONPATH=/app

RUN useradd --create-home --uid 10001 --user-group app
USER app

# A container's web server must listen on every interface to be reachable (health checks use
# 127.0.0.1 inside the container). The port is RESUME_WEB_PORT, 6066 by default.
ENV RESUME_WEB_BIND=0.0.0.0
EXPOSE 6066

ENTRYPOINT ["phoenix-resume"]
CMD ["worker"]
