/**
 * A token bucket: `burst` tokens at most, refilled at `ratePerSec`; each request takes one. So a
 * client may send `burst` requests at once, then `ratePerSec` on average — the shape of
 * nginx's `limit_req rate=… burst=…` and of most API gateways. Pure: the clock is injected, so
 * the tests step time by hand.
 */
import { MigrationError } from '../errors.ts';

/** How many requests a client may send. */
export interface RateLimit {
  /** Sustained requests per second. */
  ratePerSec: number;
  /** Requests that may come at once (the bucket's size). */
  burst: number;
}

/** Per control client: generous for people and scripts (`migrate --follow` polls 5 times a second). */
export const DEFAULT_RATE_LIMIT: Readonly<RateLimit> = Object.freeze({ ratePerSec: 50, burst: 100 });

/** Throws ERR_INVALID_ARGUMENT unless the rate is positive and finite and the burst a whole number ≥ 1. */
export function checkRateLimit(limit: RateLimit, what = 'rate limit'): RateLimit {
  const { ratePerSec, burst } = limit;
  if (!(Number.isFinite(ratePerSec) && ratePerSec > 0)) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `${what}: the rate must be a positive number per second, got ${ratePerSec}`,
    );
  }
  if (!(Number.isSafeInteger(burst) && burst >= 1)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `${what}: the burst must be a whole number ≥ 1, got ${burst}`);
  }
  return { ratePerSec, burst };
}

export class TokenBucket {
  readonly #limit: RateLimit;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /** A full bucket. `now` is a monotonic clock in ms. @default performance.now */
  constructor(limit: RateLimit, now: () => number = () => performance.now()) {
    this.#limit = checkRateLimit(limit);
    this.#now = now;
    this.#tokens = limit.burst;
    this.#at = now();
  }

  /** Take one token: true if there was one (the request may go), false if not (refuse it). */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is there (0: one is now). */
  waitMs(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) * 1000) / this.#limit.ratePerSec);
  }

  #refill(): void {
    const now = this.#now();
    const earned = ((now - this.#at) * this.#limit.ratePerSec) / 1000;
    this.#tokens = Math.min(this.#limit.burst, this.#tokens + earned);
    this.#at = now;
  }
}
