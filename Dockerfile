# The bridge (and, with another command, the demo agent) on the official Deno image.
FROM denoland/deno:2.9.6

WORKDIR /app
# Dependencies first, so code changes do not invalidate the cached npm packages.
COPY deno.json deno.lock ./
COPY src ./src
COPY scripts ./scripts
RUN deno cache --frozen src/main.ts scripts/agent.ts scripts/send.ts scripts/replay.ts scripts/validate.ts
COPY pipelines ./pipelines
COPY config ./config

USER deno
ENV LOG_FORMAT=json
# /metrics, /healthz and /readyz (METRICS_PORT).
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:9464/healthz'); Deno.exit(r.ok ? 0 : 1)"]
# The demo agent instead: docker run IMAGE run --allow-all scripts/agent.ts --hostname 0.0.0.0
CMD ["run", "--allow-all", "--cached-only", "src/main.ts"]
