# Mailtrap as a container: SMTP 1025, web inbox and API 8025, POP3 1110, mail in /data.
#
#   docker build -t mailtrap .
#   docker run -p 127.0.0.1:1025:1025 -p 127.0.0.1:8025:8025 -v mailtrap:/data mailtrap
#
# BASE_IMAGE names any Debian-like image with Python 3.11 or newer and its venv
# module. A build without network passes a wheelhouse in the context and
# --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/src/wheelhouse.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
WORKDIR /src
COPY . .
# Mailtrap's wheel from this source tree, with a wheel of each dependency beside it.
RUN python3 -m venv /build \
    && /build/bin/pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

FROM ${BASE_IMAGE}
COPY --from=build /wheels /tmp/wheels
# Installed from those wheels alone: this stage never needs the network.
RUN python3 -m venv /opt/mailtrap \
    && /opt/mailtrap/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /tmp/wheels /tmp/wheels/mailtrap_capture-*.whl \
    && rm -rf /tmp/wheels \
    && useradd --system --uid 10025 --user-group --home-dir /data --shell /usr/sbin/nologin mailtrap \
    && mkdir -p /data \
    && chown mailtrap:mailtrap /data
# The program's defaults bind loopback; inside a container every listener must
# answer on the container's own address instead.
ENV PATH=/opt/mailtrap/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MAILTRAP_SMTP=0.0.0.0:1025 \
    MAILTRAP_HTTP=0.0.0.0:8025 \
    MAILTRAP_POP3=0.0.0.0:1110 \
    MAILTRAP_DB=/data/mailtrap.db
USER 10025:10025
WORKDIR /data
VOLUME ["/data"]
EXPOSE 1025 8025 1110
# Healthy only while SMTP greets, and HTTP answers with a read of the database.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["mailtrap", "healthcheck"]
# SIGTERM (docker stop) lets transactions in flight finish before the exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailtrap"]
CMD ["serve"]
