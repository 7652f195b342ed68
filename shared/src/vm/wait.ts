/**
 * Waiting on a device's Atomics.waitAsync with an AbortSignal: the devices (NIC, disk) park
 * their event-loop waiters on a guest index with Atomics.waitAsync, which cannot be cancelled,
 * so a caller that stops waiting must be let go without it.
 */

/**
 * Resolves when `wait` settles or `signal` aborts, whichever comes first (at once if it already
 * aborted). Never rejects; the abort listener is removed once `wait` settles.
 */
export function untilSettledOrAborted(wait: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  const settled = wait.then(
    () => undefined,
    () => undefined,
  );
  if (!signal) return settled;
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = (): void => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    void settled.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
