/**
 * `cont --force`, asked first (issue 13). A handoff whose confirmation was lost — Handoff sent,
 * Resumed never came back — leaves the VM paused here in state "migrated", and the destination
 * may be running it: resuming it here could make two copies. So before a forced `cont` resumes
 * such a VM, this agent asks the destination it handed the VM to (vm-query.ts: Query →
 * QueryResult, over a data connection of its own, mutually authenticated as the migration's
 * was):
 *
 *   destination holds no copy (absent)             → resume here
 *   destination holds one, or will not say to us   → refuse: ERR_VM_RUNS_ELSEWHERE
 *   destination cannot be asked (unreachable, gone, too old to know Query, no answer in
 *   QUERY_TIMEOUT_MS)                              → only an admin may resume here, on their word
 *
 * (On a secure agent `cont` with force needs the admin role anyway — roles.ts; the check below
 * keeps the rule where the decision is, should that table ever change. A plaintext agent, on
 * loopback only, has no roles.) Every attempt is logged at warn with who made it, what the
 * destination said and what was done — event `cont.force`, the line the audit log takes up.
 */
import type { Logger } from 'pino';
import { MigrationError, toMigrationError } from '@livemig/shared';
import { msg, MsgType } from '@livemig/shared/channel';
import type { OutgoingComponents } from '@livemig/agent-source';
import type { CommandHandlers, ControlCaller } from '@livemig/shared/control';
import { VmHost } from '@livemig/shared/host';
import type { QueryState } from '@livemig/shared/protocol';

/** How long asking the destination may take, connection and handshake included. */
export const QUERY_TIMEOUT_MS = 5000;

/** Where a VM was last handed: the migration, and how to reach its destination as that migration did. */
export interface HandedTo {
  migrationId: string;
  /** The destination's data address, for logs. */
  to: string;
  connect: OutgoingComponents['connect'];
}

/** What asking the destination gave. */
export type DestinationAnswer =
  | { reached: true; state: QueryState }
  /** It answered, but would not say (ERR_FORBIDDEN: a VM of that name that did not come from us). */
  | { reached: true; refused: MigrationError }
  | { reached: false; why: MigrationError };

/** Error codes that mean the destination was reached and understood the question but will not answer it. */
const WILL_NOT_SAY = new Set(['ERR_FORBIDDEN']);

/** Ask the destination of `handed` whether it holds `vm`; never throws. */
export async function askDestination(
  handed: HandedTo,
  vm: string,
  timeoutMs = QUERY_TIMEOUT_MS,
): Promise<DestinationAnswer> {
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new MigrationError('ERR_TIMEOUT', `no answer from ${handed.to} within ${timeoutMs} ms`)),
    timeoutMs,
  );
  const aborted = new Promise<never>((_, reject) =>
    abort.signal.addEventListener('abort', () => reject(abort.signal.reason as MigrationError), { once: true }),
  );
  const connecting = handed.connect(abort.signal);
  try {
    const channel = await Promise.race([connecting, aborted]);
    try {
      channel.send(msg.query(handed.migrationId, vm));
      const result = await channel.expect(MsgType.QueryResult, abort.signal);
      return { reached: true, state: result.state };
    } catch (error) {
      const failure = toMigrationError(error, 'ERR_CONNECTION');
      return WILL_NOT_SAY.has(failure.code) ? { reached: true, refused: failure } : { reached: false, why: failure };
    } finally {
      void channel.close();
    }
  } catch (error) {
    // A connection that completes after we gave up is closed at once.
    void connecting.then((late) => late.close()).catch(() => {});
    return { reached: false, why: toMigrationError(error, 'ERR_CONNECTION') };
  } finally {
    clearTimeout(timer);
  }
}

export interface ForcedContComponents {
  host: VmHost;
  /** Where `vm` was last handed by a migration from here, if one did. */
  handedTo: (vm: string) => HandedTo | undefined;
  logger: Logger;
  /** How to ask (tests may stub it). @default askDestination */
  ask?: (handed: HandedTo, vm: string) => Promise<DestinationAnswer>;
}

/** The `cont` command handler: as VmHost.cont, but a forced resume after an unconfirmed handoff asks first. */
export function contHandler(c: ForcedContComponents): NonNullable<CommandHandlers['cont']> {
  const ask = c.ask ?? askDestination;
  return async ({ vm, force }, { caller }) => {
    const name = VmHost.checkName(vm);
    const forced = force === true;
    const who = { caller: caller?.name ?? null, role: caller?.role ?? null };
    // Only a VM left paused by an unconfirmed handoff can be in two places; anything else is a plain cont.
    if (!forced || c.host.get(name).state !== 'migrated') {
      if (forced) c.logger.warn({ event: 'cont.force', vm: name, ...who, outcome: 'not-migrated' }, 'cont --force');
      return c.host.cont(name, { force: forced });
    }
    const handed = c.handedTo(name);
    const answer: DestinationAnswer = handed
      ? await ask(handed, name)
      : { reached: false, why: new MigrationError('ERR_NOT_FOUND', 'no migration from this agent handed it anywhere') };
    const where = {
      destination: handed?.to ?? null,
      migrationId: handed?.migrationId ?? null,
      answer: describe(answer),
    };
    const log = (outcome: string, text: string): void =>
      c.logger.warn({ event: 'cont.force', vm: name, ...who, ...where, outcome }, text);
    const refusal = refuse(name, handed, answer, caller);
    if (refusal) {
      log('refused', `cont --force of "${name}" refused: ${refusal.message}`);
      throw refusal;
    }
    const info = c.host.cont(name, { force: true });
    log(
      answer.reached ? 'resumed' : 'resumed-unconfirmed',
      answer.reached
        ? `cont --force: the destination holds no copy of "${name}"; resumed here`
        : `cont --force: the destination could not be asked (${answer.why.message}); resumed here on ${who.caller ?? 'a local operator'}'s word`,
    );
    return info;
  };
}

/** Why a forced cont must not resume the VM, or undefined when it may. */
function refuse(
  vm: string,
  handed: HandedTo | undefined,
  answer: DestinationAnswer,
  caller: ControlCaller | null,
): MigrationError | undefined {
  const there = `the destination ${handed?.to ?? '?'} (migration ${handed?.migrationId ?? '?'})`;
  if (answer.reached && 'refused' in answer) {
    return new MigrationError(
      'ERR_VM_RUNS_ELSEWHERE',
      `${there} holds a VM named "${vm}" and will not say more to this agent (${answer.refused.message}); not resumed here`,
    );
  }
  if (answer.reached && answer.state !== 'absent') {
    return new MigrationError(
      'ERR_VM_RUNS_ELSEWHERE',
      `${there} holds "${vm}" (${answer.state}): resuming it here would make two copies; not resumed`,
    );
  }
  if (!answer.reached && caller !== null && caller.role !== 'admin') {
    return new MigrationError(
      'ERR_FORBIDDEN',
      `${there} cannot be asked (${answer.why.message}): only an admin may resume "${vm}" here`,
    );
  }
  return undefined;
}

function describe(answer: DestinationAnswer): string {
  if (!answer.reached) return `unreachable: ${answer.why.code}`;
  return 'refused' in answer ? `refused: ${answer.refused.code}` : answer.state;
}
