/**
 * Post-copy recovery's reconnect schedule, pure: the first retry after 100 ms, doubling up to
 * 2 s between attempts, never past the recovery deadline. (QEMU leaves the retry to the
 * operator; a broken link during post-copy blocks the guest, so we retry by ourselves, and
 * `migrate --resume` cuts a wait short.)
 */

export const RECOVERY_FIRST_DELAY_MS = 100;
export const RECOVERY_MAX_DELAY_MS = 2000;

/** The wait before attempt `attempt + 1` (attempt ≥ 1 failed), given `leftMs` before the deadline; null = give up. */
export function recoveryDelayMs(attempt: number, leftMs: number): number | null {
  if (!(leftMs > 0)) return null;
  const delay = Math.min(RECOVERY_FIRST_DELAY_MS * 2 ** Math.max(0, attempt - 1), RECOVERY_MAX_DELAY_MS);
  return Math.min(delay, leftMs);
}
