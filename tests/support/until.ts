/**
 * Waits until `condition()` holds, checking every 20 ms, and fails after `timeoutMs`. For state
 * inside this process that has no event of its own (counters); never a fixed sleep.
 */
export async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
