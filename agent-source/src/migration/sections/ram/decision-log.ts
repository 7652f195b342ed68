/**
 * The page-encoding policy's choices kept for the report: the first ones and the last ones, at
 * most `max` lines in all, with one line saying how many were left out between them. Keeping only
 * the first 32 hid what a long migration ended on: a 1 GiB wan run whose compression went off
 * after its 32nd choice read "compress brotli:2" as its last line.
 */
export class DecisionLog {
  readonly #head: string[] = [];
  readonly #tail: string[] = [];
  #dropped = 0;
  readonly #headMax: number;
  readonly #tailMax: number;

  /** `max` ≥ 3: the lines a report may hold (the report's schema bounds it). */
  constructor(max: number) {
    this.#headMax = Math.ceil((max - 1) / 2);
    // One more than shown once lines are left out: that one gives way to the gap's line.
    this.#tailMax = max - this.#headMax;
  }

  add(line: string): void {
    if (this.#head.length < this.#headMax) {
      this.#head.push(line);
      return;
    }
    this.#tail.push(line);
    if (this.#tail.length > this.#tailMax) {
      this.#tail.shift();
      this.#dropped += 1;
    }
  }

  /** The lines kept, in order; the gap (if any) as "… N choices left out …". */
  lines(): string[] {
    if (this.#dropped === 0) return [...this.#head, ...this.#tail];
    const left = this.#dropped + 1;
    return [...this.#head, `… ${left} choice${left === 1 ? '' : 's'} left out …`, ...this.#tail.slice(1)];
  }
}
