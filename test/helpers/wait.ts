/**
 * Wait for a condition that can only be observed by asking (e.g. "the migration has sent at
 * least 1 MiB"). This is synchronisation on the observed state, not a fixed sleep: it returns
 * as soon as the condition holds and fails loudly with what it last saw when it never does.
 */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; what: string },
): Promise<T> {
  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out waiting until ${options.what}; last saw: ${String(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
}
