/**
 * The bandwidth cap (`max-bandwidth`): a token bucket on the data plane. Tokens are bytes,
 * refilled continuously at `rateBps` up to a burst of `burstBytes`; `take(n)` waits until n
 * bytes may go. Waiting uses timers, not spinning, so a capped migration leaves the CPU to the
 * guest. With no rate the bucket never waits.
 */

export interface TokenBucketOptions {
  /** Bytes per second; undefined or null = unlimited. */
  rateBps?: number | null;
  /** Largest burst, bytes. @default rate × 10 ms, at least 64 KiB */
  burstBytes?: number;
  /** Clock in ms (tests inject one). @default performance.now */
  now?: () => number;
  /** Sleep (tests inject one). @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class TokenBucket {
  readonly rateBps: number | null;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #tokens: number;
  #last: number;

  constructor(options: TokenBucketOptions = {}) {
    this.rateBps = options.rateBps ?? null;
    this.#burst = options.burstBytes ?? Math.max(64 * 1024, (this.rateBps ?? 0) / 100);
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? defaultSleep;
    this.#tokens = this.#burst;
    this.#last = this.#now();
  }

  /** Wait until `bytes` may be sent, then spend them. A request larger than the burst goes into debt. */
  async take(bytes: number): Promise<void> {
    if (this.rateBps === null) return;
    this.#refill();
    this.#tokens -= bytes;
    if (this.#tokens < 0) {
      await this.#sleep((-this.#tokens / this.rateBps) * 1000);
      this.#refill();
    }
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * (this.rateBps ?? 0));
    this.#last = now;
  }
}
