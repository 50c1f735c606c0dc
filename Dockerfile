# The bridge (and, with another command, the demo agent) on the official Deno image.
FROM denoland/deno:2.9.6

WORKDIR /app
# Dependencies first, so code changes do not invalidate the cached npm packages.
COPY deno.json deno.lock ./
COPY src ./src
COPY scripts ./scripts
RUN deno cache --frozen src/main.ts scripts/agent.ts scripts/send.ts
COPY pipelines ./pipelines
COPY config ./config

USER deno
ENV LOG_FORMAT=json
# The demo agent instead: docker run IMAGE run --allow-all scripts/agent.ts --hostname 0.0.0.0
CMD ["run", "--allow-all", "--cached-only", "src/main.ts"]
