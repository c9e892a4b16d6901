# raftlog node image: `docker run raftlog node --id 1 --peers ... --data-dir /data`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home raftlog \
    && mkdir -p /data /app \
    && chown raftlog:raftlog /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && rm -rf /root/.cache
COPY examples/lab_client.py /app/lab_client.py

USER raftlog
VOLUME ["/data"]
# 1234: clients (XML-RPC and HTTP/JSON); 4321: peers.
EXPOSE 1234 4321

# Ready means the node knows a leader (GET /readyz answers 200).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:1234/readyz', timeout=2)"]

ENTRYPOINT ["raftlog"]
CMD ["node", "--help"]
