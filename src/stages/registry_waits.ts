/**
 * @module
 * A schema registry that cannot answer is no failure of the record that needs it: the call is tried
 * again after doubling pauses (1 s up to 30 s), with one WARN line an outage and one INFO line when
 * it answers again, until it answers, the job goes stale or the bridge stops (then {@link Abandoned}:
 * the job is neither published nor committed, so it is read again). Used by decode (records in the
 * wire format) and publish (replies written with a registered schema).
 *
 * @example
 * ```ts
 * import { RegistryWaits } from "./registry_waits.ts";
 * import { RegistryUnavailable } from "../registry/wire.ts";
 * import { unledgered } from "../delivery/ledger.ts";
 * const pauses: number[] = [];
 * const waits = new RegistryWaits("http://registry", "records", { sleep: (ms) => (pauses.push(ms), Promise.resolve()) });
 * let calls = 0;
 * const answer = await waits.call({ ack: unledgered }, () => {
 *   if (++calls < 4) return Promise.reject(new RegistryUnavailable("HTTP 503"));
 *   return Promise.resolve("schema");
 * });
 * if (answer !== "schema" || pauses.join() !== "1000,2000,4000") throw new Error("waited, doubling");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { Abandoned } from "../errors.ts";
import type { Job } from "../model.ts";
import { RegistryUnavailable } from "../registry/wire.ts";
import { abortableDelay } from "../util/abortable_delay.ts";

const log = getLogger(["agentstream", "registry"]);

/** The first and the longest pause before asking a registry that could not answer again. */
export const REGISTRY_RETRY_MS = [1_000, 30_000] as const;

/** Calls to one registry for one stage, waiting out its outages (see the module comment). */
export class RegistryWaits {
  /** Calls waiting for the registry now: an outage is logged as it begins and as the last of them ends. */
  #waiting = 0;

  /** `what` waits: "records" or "replies", for the log lines. */
  constructor(
    readonly url: string,
    readonly what: string,
    readonly options: { stopping?: AbortSignal; sleep?: typeof abortableDelay } = {},
  ) {}

  /**
   * `call`'s answer, asked again while it rejects with {@link RegistryUnavailable}; any other
   * rejection is passed on. Rejects with {@link Abandoned} once `job` is stale or the bridge stops.
   */
  async call<T>(job: Pick<Job, "ack">, call: () => Promise<T>): Promise<T> {
    const sleep = this.options.sleep ?? abortableDelay;
    const ended = AbortSignal.any([job.ack.signal, ...(this.options.stopping ? [this.options.stopping] : [])]);
    let waiting = false, answered = false;
    try {
      for (let pause: number = REGISTRY_RETRY_MS[0];; pause = Math.min(2 * pause, REGISTRY_RETRY_MS[1])) {
        // A job gone stale (or a stop) while it waited its turn asks no more.
        if (ended.aborted) throw new Abandoned("the job went stale or the bridge stopped while the registry was down");
        try {
          const answer = await call();
          answered = true;
          return answer;
        } catch (error) {
          if (!(error instanceof RegistryUnavailable)) throw error;
          if (!waiting && this.#waiting++ === 0) {
            log.warn("schema registry at {url}: {error}; {what} wait for it, none is dead-lettered", {
              url: this.url,
              error: error.message,
              what: this.what,
            });
          }
          waiting = true;
        }
        await sleep(pause, ended);
      }
    } finally {
      if (waiting && --this.#waiting === 0 && answered) {
        log.info("the schema registry at {url} answers again", { url: this.url });
      }
    }
  }
}
