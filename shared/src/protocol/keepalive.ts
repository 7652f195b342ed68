/**
 * A FramedSocket's keepalive: one timer that sends a Heartbeat when this side has sent nothing
 * for `heartbeatIntervalMs`, and fails the connection with ERR_IDLE_TIMEOUT when nothing arrived
 * for `idleTimeoutMs` (not counted while reading is paused: then the silence is ours). Apart from
 * the socket because it is the only part that runs on time rather than on bytes. It never
 * touches the socket: the send and receive paths tell it about traffic (`sent`, `received`), and
 * it acts through the hooks it is given.
 *
 * The timer ticks at half the heartbeat interval or a quarter of the idle timeout (whichever is
 * shorter, at least 5 ms), and is unref'd: a keepalive never holds the process open.
 */
import { MigrationError } from '../errors.ts';

/** How the keepalive acts on its connection. */
export interface KeepaliveHooks {
  /** True while reading is paused (the idle timeout is suspended). */
  isPaused(): boolean;
  /** True when nothing waits to be written (a heartbeat would only queue behind real traffic). */
  isWriteIdle(): boolean;
  /** Send Heartbeat `seq` now. */
  sendHeartbeat(seq: number): void;
  /** Nothing was received for too long: fail the connection with `error`. */
  idle(error: MigrationError): void;
}

export class Keepalive {
  readonly #heartbeatIntervalMs: number;
  readonly #idleTimeoutMs: number;
  readonly #hooks: KeepaliveHooks;
  #timer: NodeJS.Timeout | undefined;
  #rxSeen = false;
  #txSeen = false;
  #lastRx = performance.now();
  #lastTx = performance.now();
  #heartbeatSeq = 0;

  /** 0 turns either half off; both 0: no timer at all. */
  constructor(settings: { heartbeatIntervalMs: number; idleTimeoutMs: number }, hooks: KeepaliveHooks) {
    this.#heartbeatIntervalMs = settings.heartbeatIntervalMs;
    this.#idleTimeoutMs = settings.idleTimeoutMs;
    this.#hooks = hooks;
  }

  /** Bytes arrived. */
  received(): void {
    this.#rxSeen = true;
  }

  /** A frame was written. */
  sent(): void {
    this.#txSeen = true;
  }

  /** Reading resumed after a pause: the idle time counts from now. */
  readingResumed(): void {
    this.#lastRx = performance.now();
  }

  start(): void {
    const hb = this.#heartbeatIntervalMs;
    const idle = this.#idleTimeoutMs;
    if (hb === 0 && idle === 0) return;
    const period = Math.max(5, Math.min(hb > 0 ? hb / 2 : Infinity, idle > 0 ? idle / 4 : Infinity));
    this.#lastRx = this.#lastTx = performance.now();
    this.#timer = setInterval(() => this.#tick(), period);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    const hb = this.#heartbeatIntervalMs;
    const idle = this.#idleTimeoutMs;
    if (this.#rxSeen) {
      this.#rxSeen = false;
      this.#lastRx = now;
    } else if (idle > 0 && !this.#hooks.isPaused() && now - this.#lastRx > idle) {
      this.#hooks.idle(
        new MigrationError('ERR_IDLE_TIMEOUT', `nothing received for ${Math.round(now - this.#lastRx)} ms`),
      );
      return;
    }
    if (this.#txSeen) {
      this.#txSeen = false;
      this.#lastTx = now;
    } else if (hb > 0 && now - this.#lastTx >= hb && this.#hooks.isWriteIdle()) {
      // Only when nothing is queued: queued bytes will reach the peer and count as activity.
      this.#lastTx = now;
      this.#hooks.sendHeartbeat(++this.#heartbeatSeq);
    }
  }
}
