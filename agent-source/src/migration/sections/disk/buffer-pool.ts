/**
 * Payload buffers of one size, reused. A disk copy reads a megabyte of blocks per message: a
 * new buffer each time made the source's garbage collector run a major collection every few
 * dozen megabytes (external memory pressure; profiles of the storage benchmark showed it among
 * the source's busiest threads). A buffer goes back once the channel is done with it (its
 * `onWritten`); at most `maxFree` wait here, so the pool never holds more than that.
 */
export class BufferPool {
  readonly #bytes: number;
  readonly #maxFree: number;
  readonly #free: Uint8Array[] = [];

  constructor(bytes: number, maxFree: number) {
    this.#bytes = bytes;
    this.#maxFree = maxFree;
  }

  /** A buffer of the pool's size: a returned one, or a new one. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.#bytes);
  }

  /** `buffer` (taken from here) is free again. */
  give(buffer: Uint8Array): void {
    if (buffer.byteLength === this.#bytes && this.#free.length < this.#maxFree) this.#free.push(buffer);
  }
}
