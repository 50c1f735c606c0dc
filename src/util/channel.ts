/**
 * @module
 * A bounded async channel: producers `await send()` while it is full, one consumer iterates.
 * `close()` ends iteration once the buffered items are read; `fail()` makes the consumer throw.
 * It joins callback-driven code (kafkajs' `eachBatch`, concurrent calls) to async iteration with
 * backpressure.
 *
 * @example
 * ```ts
 * import { Channel } from "./channel.ts";
 * const channel = new Channel<number>(1);
 * (async () => { await channel.send(1); await channel.send(2); channel.close(); })();
 * const received = await Array.fromAsync(channel);
 * if (received.join() !== "1,2") throw new Error(`in order: ${received}`);
 * ```
 */
export class Channel<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #closed = false;
  #error: { error: unknown } | undefined;
  #readers: (() => void)[] = [];
  #writers: (() => void)[] = [];

  constructor(readonly capacity = Number.POSITIVE_INFINITY) {}

  /** Adds an item, waiting while the channel is full. Resolves `false` if the channel closed first. */
  async send(item: T): Promise<boolean> {
    while (!this.#closed && this.#items.length >= this.capacity) {
      await new Promise<void>((resolve) => this.#writers.push(resolve));
    }
    if (this.#closed) return false;
    this.#items.push(item);
    this.#wake(this.#readers);
    return true;
  }

  /** Ends the stream after the items already sent; waiting senders get `false`. */
  close(): void {
    this.#closed = true;
    this.#wake(this.#readers);
    this.#wake(this.#writers);
  }

  /** Ends the stream with an error, thrown to the reader once the buffered items are read. */
  fail(error: unknown): void {
    this.#error ??= { error };
    this.close();
  }

  /** Drops the buffered items, returning them, and wakes waiting senders. */
  drain(): T[] {
    const items = this.#items;
    this.#items = [];
    this.#wake(this.#writers);
    return items;
  }

  #wake(waiters: (() => void)[]): void {
    for (const wake of waiters.splice(0)) wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (true) {
      if (this.#items.length) {
        const item = this.#items.shift()!;
        this.#wake(this.#writers);
        yield item;
      } else if (this.#closed) {
        if (this.#error) throw this.#error.error;
        return;
      } else {
        await new Promise<void>((resolve) => this.#readers.push(resolve));
      }
    }
  }
}
