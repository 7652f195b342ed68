/**
 * A section that is sent once, whole, at the stop point — its state changes with every guest
 * step, so there is nothing to pre-copy (CPU registers, device state). `send` exports it from
 * the paused VM, puts it on the wire and returns the digest of exactly what it sent.
 */
import type { OutgoingSection } from './section.ts';

export class StopPointSection implements OutgoingSection {
  readonly name: string;
  /** Bytes it will take on the wire, for the switchover rule, until sent. */
  readonly #estimate: number;
  readonly #send: () => string;
  #digest: string | undefined;

  constructor(name: string, estimateBytes: number, send: () => string) {
    this.name = name;
    this.#estimate = estimateBytes;
    this.#send = send;
  }

  pending(): number {
    return this.#digest === undefined ? this.#estimate : 0;
  }

  complete(): Promise<void> {
    this.#digest = this.#send();
    return Promise.resolve();
  }

  digest(): string | undefined {
    return this.#digest;
  }
}
