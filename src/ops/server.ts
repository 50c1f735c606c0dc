/**
 * @module
 * The operations port: Prometheus `/metrics`, `/healthz` (the process is alive and serving) and
 * `/readyz` (the bridge is consuming: group joined, no agent circuit open; 503 otherwise, with the
 * failing checks in the JSON body). It starts before the bridge connects, so a slow start is alive
 * but not ready.
 *
 * @example
 * ```ts
 * import { createMetrics } from "./metrics.ts";
 * import { startOpsServer } from "./server.ts";
 * const server = startOpsServer({ port: 0, metrics: createMetrics(), readiness: () => ({ ready: true }) });
 * const response = await fetch(`http://127.0.0.1:${server.port}/healthz`); // 200 "ok"
 * await response.body?.cancel();
 * await server.close();
 * ```
 */
import { FatalError } from "../errors.ts";
import type { Metrics } from "./metrics.ts";

export interface OpsServerOptions {
  port: number;
  /** Default `0.0.0.0`: probes and scrapes come from outside the pod. */
  hostname?: string;
  metrics: Metrics;
  /** The readiness report; `ready` decides between 200 and 503. */
  readiness: () => { ready: boolean };
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts serving; a port already in use is a {@link FatalError} naming `METRICS_PORT`. */
export function startOpsServer(options: OpsServerOptions): OpsServer {
  const handler = async (request: Request): Promise<Response> => {
    const { pathname } = new URL(request.url);
    switch (pathname) {
      case "/metrics":
        return new Response(await options.metrics.registry.metrics(), {
          headers: { "content-type": options.metrics.registry.contentType },
        });
      case "/healthz":
        return new Response("ok\n");
      case "/readyz": {
        const report = options.readiness();
        return Response.json(report, { status: report.ready ? 200 : 503 });
      }
      default:
        return new Response("not found: try /metrics, /healthz or /readyz\n", { status: 404 });
    }
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ port: options.port, hostname: options.hostname ?? "0.0.0.0", onListen: () => {} }, handler);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new FatalError(
        `environment:METRICS_PORT: port ${options.port} is in use; set METRICS_PORT to a free port (0: any)`,
        { config: true },
      );
    }
    throw error;
  }
  return { port: server.addr.port, close: () => server.shutdown() };
}
