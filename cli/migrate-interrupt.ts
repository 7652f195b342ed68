/**
 * Ctrl-C on `livemig migrate`, as `virsh migrate` has it: the first press cancels the migration
 * the command started (QMP `migrate_cancel`), the second detaches and leaves it to the agent.
 *
 *   press 1   "cancelling migration ID in 1 s — Ctrl-C again to detach instead"; after that
 *             grace second, `migrate-cancel`. The command follows on and prints the report
 *             (outcome cancelled, exit 1). Past the point of no return the agent refuses
 *             (ERR_VM_STATE, with why): that line is shown and the command follows on.
 *   press 2   detach: stop following (exit 130). Within the grace second nothing was cancelled,
 *             so the migration goes on; after it, the cancel already asked goes on.
 *
 * The grace second is what lets a double press mean "give me my terminal back" without losing
 * the migration (the old Ctrl-C, and what `--detach` does from the start). A press before the
 * migration has an id (the `migrate` request in flight) counts the same: the cancel waits for
 * the id. The handler is installed only from that request on: before, nothing runs on the agent
 * on our behalf and Ctrl-C ends the command as usual.
 */
import { isMigrationError, MigrationError } from '@livemig/shared';
import type { ControlClient } from '@livemig/shared/control';

/** How long the first Ctrl-C waits for a second one before it cancels, ms. */
export const CANCEL_GRACE_MS = 1000;

/** Exit status of a command detached by Ctrl-C (128 + SIGINT, as a shell reports it). */
export const EXIT_DETACHED = 130;

export interface MigrateInterruptOptions {
  /** Print one line for the operator (stderr). */
  say: (line: string) => void;
  /** @default CANCEL_GRACE_MS */
  graceMs?: number;
}

export class MigrateInterrupt {
  readonly #say: (line: string) => void;
  readonly #graceMs: number;
  readonly #detach = new AbortController();
  readonly #onSigint = (): void => this.#press();
  #listening = false;
  #presses = 0;
  #target: { client: ControlClient; migrationId: string } | undefined;
  #grace: NodeJS.Timeout | undefined;
  /** The grace second is over: cancel as soon as there is a migration to cancel. */
  #cancelDue = false;
  #cancelState: 'not asked' | 'asked' | 'accepted' | 'refused' = 'not asked';

  constructor(options: MigrateInterruptOptions) {
    this.#say = options.say;
    this.#graceMs = options.graceMs ?? CANCEL_GRACE_MS;
  }

  /** Aborts on the second press: stop following. */
  get signal(): AbortSignal {
    return this.#detach.signal;
  }

  /** Ctrl-C was pressed at least once. */
  get pressed(): boolean {
    return this.#presses > 0;
  }

  /** The second press came: the command detached. */
  get detached(): boolean {
    return this.#detach.signal.aborted;
  }

  /** Where the cancel stands: not asked (yet), asked (no answer yet), accepted or refused by the agent. */
  get cancelState(): 'not asked' | 'asked' | 'accepted' | 'refused' {
    return this.#cancelState;
  }

  /** Take Ctrl-C from now on (call just before asking the agent to start the migration). */
  listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    process.on('SIGINT', this.#onSigint);
  }

  /** The migration Ctrl-C is about: cancel it now if the first press's grace is over. */
  follow(client: ControlClient, migrationId: string): void {
    this.#target = { client, migrationId };
    if (this.#cancelDue) void this.#cancel();
  }

  /** Give Ctrl-C back (its default: end the process). */
  close(): void {
    clearTimeout(this.#grace);
    if (this.#listening) process.off('SIGINT', this.#onSigint);
    this.#listening = false;
  }

  #press(): void {
    this.#presses += 1;
    if (this.#presses >= 2) {
      clearTimeout(this.#grace);
      this.#detach.abort(new MigrationError('ERR_CANCELLED', 'detached by a second Ctrl-C'));
      return;
    }
    const which = this.#target ? `migration ${this.#target.migrationId}` : 'the migration';
    const seconds = this.#graceMs / 1000;
    this.#say(`livemig: cancelling ${which} in ${seconds} s — Ctrl-C again to detach instead (it goes on)`);
    this.#grace = setTimeout(() => {
      this.#cancelDue = true;
      if (this.#target) void this.#cancel();
    }, this.#graceMs);
  }

  async #cancel(): Promise<void> {
    if (this.#cancelState !== 'not asked' || this.detached || !this.#target) return;
    this.#cancelState = 'asked';
    const { client, migrationId } = this.#target;
    try {
      const { cancelled } = await client.request('migrate-cancel', { migrationId });
      this.#cancelState = cancelled ? 'accepted' : 'refused';
      this.#say(
        cancelled
          ? `livemig: cancelling migration ${migrationId} (Ctrl-C again to stop waiting)`
          : `livemig: migration ${migrationId} is over already: nothing to cancel`,
      );
    } catch (error) {
      this.#cancelState = 'refused';
      // Past the point of no return (ERR_VM_STATE, with why): say so and follow it to its end.
      const coded = isMigrationError(error) ? `${error.code}: ${error.message}` : String(error);
      this.#say(`livemig: ${coded}; following it to the end (Ctrl-C again to detach)`);
    }
  }
}

/** `--flag value` pairs as a shell reads them back (values quoted when they need it). */
function shellArgs(args: ReadonlyArray<readonly [string, string | undefined]>): string {
  const quote = (value: string): string =>
    /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
  return args
    .filter((pair): pair is readonly [string, string] => pair[1] !== undefined)
    .map(([flag, value]) => `${flag} ${quote(value)}`)
    .join(' ');
}

/**
 * How to follow and cancel a migration left running (`--detach`, a second Ctrl-C): the
 * commands to type, with the same agent and identity flags as this one.
 */
export function followHints(
  migrationId: string,
  flags: { control: string; pki?: string; name?: string; agentName?: string },
): string {
  const agent = shellArgs([
    ['--control', flags.control],
    ['--pki', flags.pki],
    ['--name', flags.name],
    ['--agent-name', flags.agentName],
  ]);
  return (
    `  follow it:  livemig status ${agent}   (or: livemig events ${agent})\n` +
    `  cancel it:  livemig migrate-cancel ${agent} --migration ${migrationId}\n`
  );
}
