/**
 * The destination's side of "do you run this VM?" (protocol: Query → QueryResult, a connection of
 * its own). A source whose handoff was never confirmed — it sent Handoff, Resumed never came
 * back — asks before `cont --force` resumes the VM there (forced-cont.ts). The answer is what
 * this agent holds under that name: `absent`, or the state of its copy (`incoming`: a copy not
 * yet handed over, which a Handoff still in flight could start; `running`, `paused`,
 * `migrating-out`; `migrated`: it came and left again, so it runs further on).
 *
 * Who may ask: the source the VM arrived from — its certificate name as mutual TLS proved it
 * when its Setup came (Arrivals keeps it, per VM name, past the end of the migration). Anyone
 * else the data plane admits gets ERR_FORBIDDEN once this agent holds a VM of that name (a VM
 * booted here, or one that came from elsewhere, is no business of theirs); `absent` tells no one
 * anything they could use. On a plaintext agent (loopback only) there are no identities and
 * every local peer is the same nobody.
 */
import type { Logger } from 'pino';
import { MigrationError, toMigrationError } from '@livemig/shared';
import { msg, type AcceptedPeer } from '@livemig/shared/channel';
import type { VmHost, VmState } from '@livemig/shared/host';
import type { QueryMsg, QueryState } from '@livemig/shared/protocol';

/** Every VmState is a QueryState: the destination answers with the state its copy is in. */
const HELD_STATES: Readonly<Record<VmState, QueryState>> = {
  incoming: 'incoming',
  running: 'running',
  paused: 'paused',
  'migrating-out': 'migrating-out',
  migrated: 'migrated',
};

/** Where a VM came from: the migration that brought it, and its source's certificate name (null: plaintext). */
export interface Arrival {
  migrationId: string;
  source: string | null;
}

/** Arrivals remembered at most (oldest forgotten first): one per VM name, so this bounds only hostile churn. */
export const MAX_ARRIVALS = 1024;

/** Per VM name, the last migration that brought it here — kept after the migration ended. */
export class Arrivals {
  readonly #host: VmHost;
  readonly #byVm = new Map<string, Arrival>();

  constructor(host: VmHost) {
    this.#host = host;
  }

  /**
   * A Setup for `vm` arrived from `source`. A VM of that name held here keeps its record: that
   * Setup is refused anyway (the name is taken), and it must not make its sender the one who may ask.
   */
  record(vm: string, arrival: Arrival): void {
    if (heldState(this.#host, vm) !== undefined) return;
    this.#byVm.delete(vm);
    this.#byVm.set(vm, arrival);
    if (this.#byVm.size > MAX_ARRIVALS) this.#byVm.delete(this.#byVm.keys().next().value!);
  }

  of(vm: string): Arrival | undefined {
    return this.#byVm.get(vm);
  }
}

/** The state of the VM this host holds under `name`, or undefined when it holds none. */
function heldState(host: VmHost, name: string): VmState | undefined {
  return host.list().find((vm) => vm.name === name)?.state;
}

/** The answer to `asker` about a VM held in state `held` (undefined: not held) that arrived as `arrival`. Pure. */
export function queryAnswer(input: {
  vm: string;
  held: VmState | undefined;
  arrival: Arrival | undefined;
  asker: string | null;
}): QueryState | MigrationError {
  if (input.held === undefined) return 'absent';
  if (input.arrival === undefined || input.arrival.source !== input.asker) {
    return new MigrationError(
      'ERR_FORBIDDEN',
      `VM "${input.vm}" did not arrive here from ${input.asker === null ? 'this peer' : `"${input.asker}"`}: not yours to ask about`,
    );
  }
  return HELD_STATES[input.held];
}

/** Answer one Query on its own connection, then close it. */
export function answerQuery(
  peer: AcceptedPeer,
  query: QueryMsg,
  components: { host: VmHost; arrivals: Arrivals; logger: Logger },
): void {
  const { host, arrivals, logger } = components;
  const asker = peer.channel.peer?.name ?? null;
  const arrival = arrivals.of(query.vm);
  const answer = queryAnswer({ vm: query.vm, held: heldState(host, query.vm), arrival, asker });
  const context = { event: 'query.answer', vm: query.vm, migrationId: query.migrationId, asker, arrival };
  if (answer instanceof MigrationError) {
    logger.warn({ ...context, err: answer }, 'refused to say whether a VM runs here');
    peer.channel.abort(answer);
    return;
  }
  logger.info({ ...context, state: answer }, `asked whether VM "${query.vm}" runs here: ${answer}`);
  try {
    peer.channel.send(msg.queryResult(answer));
  } catch (error) {
    logger.debug({ err: toMigrationError(error, 'ERR_CONNECTION') }, 'the asker left before the answer');
  }
  void peer.channel.close();
}
