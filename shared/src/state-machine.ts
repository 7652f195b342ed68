/**
 * A small explicit state machine: a transition table, and one way to change state —
 * `transition(expected, next)` — which validates first and mutates second (unlike QEMU's
 * `postcopy_state_set`, which sets and then checks). Both migration directions use it, so a
 * phase change is always a table lookup plus a listener call, never an ad-hoc flag.
 */
import { MigrationError } from './errors.ts';

export type TransitionTable<S extends string> = Readonly<Record<S, readonly S[]>>;

export class StateMachine<S extends string> {
  readonly #table: TransitionTable<S>;
  readonly #listeners: Array<(from: S, to: S) => void> = [];
  #state: S;

  constructor(table: TransitionTable<S>, initial: S) {
    this.#table = table;
    this.#state = initial;
  }

  get state(): S {
    return this.#state;
  }

  /** True when the table allows `from → to`. */
  allows(from: S, to: S): boolean {
    return this.#table[from].includes(to);
  }

  /** True when no transition leaves the current state. */
  get isFinal(): boolean {
    return this.#table[this.#state].length === 0;
  }

  /**
   * Move from `expected` (or any of several) to `next`. Throws ERR_BAD_TRANSITION, changing
   * nothing, when the current state is not the expected one or the table forbids the move.
   */
  transition(expected: S | readonly S[], next: S): void {
    const from = this.#state;
    const expectedList: readonly S[] = typeof expected === 'string' ? [expected] : expected;
    if (!expectedList.includes(from)) {
      throw new MigrationError(
        'ERR_BAD_TRANSITION',
        `cannot go to "${next}": state is "${from}", expected ${expectedList.map((s) => `"${s}"`).join(' or ')}`,
      );
    }
    if (!this.allows(from, next)) {
      throw new MigrationError('ERR_BAD_TRANSITION', `transition "${from}" → "${next}" is not allowed`);
    }
    this.#state = next;
    for (const listener of this.#listeners) listener(from, next);
  }

  /** Called after every transition. */
  onTransition(listener: (from: S, to: S) => void): void {
    this.#listeners.push(listener);
  }
}
