# Stands in for Mailpit where no registry is reachable: an SMTP server that
# accepts everything and prints one JSON line per email, for the test to read.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-aiosmtpd \
    && rm -rf /var/lib/apt/lists/*
COPY smtp_sink.py /usr/local/bin/smtp_sink.py
USER nobody
ENTRYPOINT ["python3", "-u", "/usr/local/bin/smtp_sink.py"]
