/**
 * @module
 * How large a record batch the broker takes: its `message.max.bytes`, and each topic's own
 * `max.message.bytes` where that is lower, read with the admin client (once for the broker, once per
 * topic). kafkajs puts everything it sends to one partition in one call into one record batch, so a
 * writer that knows these limits can split its sends instead of having the broker refuse them.
 *
 * @example
 * ```ts
 * import { batchBytes } from "./record_limits.ts";
 * import { recordBytes } from "../model.ts";
 * const record = { key: null, value: new Uint8Array(1_000), headers: { "x-pipeline": "p" } };
 * if (recordBytes(record) < 1_000 || batchBytes([record, record]) < 2 * recordBytes(record)) throw new Error("upper bounds");
 * ```
 */
import { getLogger } from "@logtape/logtape";
import { type Admin, ConfigResourceTypes } from "kafkajs";
import { errorMessage } from "../errors.ts";
import { type OutRecord, recordBytes } from "../model.ts";

const log = getLogger(["agentstream", "limits"]);

/** Kafka's defaults, for when the broker cannot be asked. */
const DEFAULT_MAX_BYTES = 1_048_588;
/** A record batch's header (magic v2). */
const BATCH_OVERHEAD = 61;

/** An upper bound of a record batch holding `records`. */
export function batchBytes(records: readonly OutRecord[]): number {
  return records.reduce((sum, record) => sum + recordBytes(record), BATCH_OVERHEAD);
}

export class RecordLimits {
  readonly #admin: Admin;
  #broker = DEFAULT_MAX_BYTES;
  readonly #topics = new Map<string, number>();

  constructor(admin: Admin) {
    this.#admin = admin;
  }

  /** Reads the broker's `message.max.bytes` (keeps Kafka's default when it cannot). */
  async start(): Promise<void> {
    try {
      const { brokers } = await this.#admin.describeCluster();
      const value = await this.#read(ConfigResourceTypes.BROKER, String(brokers[0].nodeId), "message.max.bytes");
      if (value) this.#broker = value;
    } catch (error) {
      log.warn("could not read the broker's message.max.bytes, assuming {bytes}: {error}", {
        bytes: this.#broker,
        error: errorMessage(error),
      });
    }
  }

  /** The largest record batch `topic` takes. A topic that cannot be described yet has the broker's limit. */
  async of(topic: string): Promise<number> {
    const known = this.#topics.get(topic);
    if (known !== undefined) return known;
    try {
      const own = await this.#read(ConfigResourceTypes.TOPIC, topic, "max.message.bytes");
      const limit = Math.min(this.#broker, own ?? this.#broker);
      this.#topics.set(topic, limit);
      return limit;
    } catch {
      return this.#broker; // not created yet: auto-created with the broker's defaults
    }
  }

  async #read(type: ConfigResourceTypes, name: string, config: string): Promise<number | undefined> {
    const { resources } = await this.#admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type, name, configNames: [config] }],
    });
    if (resources[0]?.errorCode) throw new Error(`${name}: ${resources[0].errorMessage || resources[0].errorCode}`);
    const value = resources[0]?.configEntries.find((entry) => entry.configName === config)?.configValue;
    return value === undefined ? undefined : Number(value);
  }
}
