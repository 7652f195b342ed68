/**
 * The destination's receiver as a pure step function (cloud-hypervisor's receive step is the
 * model): `step(state, message)` returns the next state and the one action the driver must
 * carry out, or a MigrationError — and then nothing changed. A message is accepted only where
 * its state allows it; the checks that were scattered over the old driver (CPU and device state
 * before StopCopyEnd, post-copy only when negotiated, one StopCopyEnd) are all here, table-tested
 * against every state in test/unit/agent-dest/receiver.test.ts.
 *
 * Internal events (the VM was built, it resumed, every page arrived, the link broke or came
 * back, a failure) go through `advance`, checked against the same transition table.
 */
import { MigrationError } from '@livemig/shared';
import {
  messageName,
  MsgType,
  type CpuStateMsg,
  type DeviceStateMsg,
  type DiskBlocksMsg,
  type Message,
  type MigrationMode,
  type RecordMsg,
  type SetupMsg,
} from '@livemig/shared/protocol';
import { DEST_TRANSITIONS, type DestStatus } from './status.ts';

/** The stop-point state sections that must have arrived before the VM may run. */
export const STATE_SECTIONS = ['cpu', 'devices'] as const;
export type StateSection = (typeof STATE_SECTIONS)[number];

export interface ReceiverState {
  readonly status: DestStatus;
  /** From Setup (undefined before it). */
  readonly mode: MigrationMode | undefined;
  /** The peer negotiated post-copy. */
  readonly postcopyAllowed: boolean;
  /** Which stop-point state sections arrived. */
  readonly loaded: readonly StateSection[];
  /** How the VM goes on at Handoff: decided by StopCopyEnd (pre-copy) or PostcopyStart. */
  readonly path: 'precopy' | 'postcopy' | undefined;
  /** Post-copy: the source's digests after its push (StopCopyEnd), once they came. */
  readonly sourceDigests: Readonly<Record<string, string>> | undefined;
  /**
   * The peer negotiated `signed-record`: one Record may come once the migration completed, or
   * once the source cancelled it.
   */
  readonly recordAllowed: boolean;
  /** The Record came. */
  readonly recorded: boolean;
  /** From Setup: the VM's disk moves in post-copy (a PostcopyStart may come even for a memory pre-copy). */
  readonly diskPostcopy: boolean;
  /** From Setup: the VM has a disk (disk messages are allowed). */
  readonly hasDisk: boolean;
  /** From Setup: the disk is on shared storage (DiskAllocated, DiskWritten are allowed). */
  readonly diskShared: boolean;
  /** DiskAllocated came (it comes once). */
  readonly prehashAsked: boolean;
  /** The peer negotiated `fault-on-demand` (with `fault-thread`): a hybrid's fault thread starts on FaultOpen. */
  readonly faultOnDemand: boolean;
  /** FaultOpen came (it comes once). */
  readonly faultOpenAsked: boolean;
  /** The source ended the migration with a Cancel (status failed): the record of that may follow. */
  readonly cancelled: boolean;
}

export type Action =
  | { kind: 'build'; setup: SetupMsg }
  /** Pages: the bytes are already in guest memory (the channel's page sink). */
  | { kind: 'none' }
  /** Disk blocks to write (and acknowledge, if asked). */
  | { kind: 'disk-blocks'; message: DiskBlocksMsg }
  /** Storage post-copy: the blocks absent here. */
  | { kind: 'disk-absent'; bitmap: Uint8Array }
  /** Shared storage: hash these allocated blocks of the image now, while the VM runs there. */
  | { kind: 'disk-prehash'; bitmap: Uint8Array }
  /** Hybrid with `fault-on-demand`: start the fault thread now and say where it listens (FaultListening). */
  | { kind: 'fault-open' }
  /** Shared storage, at the stop point: blocks written since the mark, to hash again. */
  | { kind: 'disk-written'; blocks: Uint32Array }
  | { kind: 'ack-round'; round: number }
  | { kind: 'load'; message: CpuStateMsg | DeviceStateMsg }
  /** Pre-copy stop point: verify every section against `digests`, then Ready. */
  | { kind: 'verify-precopy'; digests: Readonly<Record<string, string>> }
  /** Post-copy switchover: verify the state sections, mark present what is not in `bitmap`, then Ready. */
  | { kind: 'start-postcopy'; bitmap: Uint8Array; digests: Readonly<Record<string, string>> }
  | { kind: 'resume'; to: 'running' | 'postcopy' }
  /** Post-copy: the source's memory digest after its push; verify once every page is here. */
  | { kind: 'source-digests'; digests: Readonly<Record<string, string>> }
  /** The source ended it before Handoff: discard the copy here (then its record may come). */
  | { kind: 'cancelled'; reason: string }
  /** Completed or cancelled: check the source's signed record against what this side saw, countersign or refuse. */
  | { kind: 'countersign'; message: RecordMsg };

export type Step = { state: ReceiverState; action: Action } | MigrationError;

export type InternalEvent = 'built' | 'resumed' | 'all-present' | 'link-lost' | 'relinked' | 'failed';

export function initialState(options: {
  postcopyAllowed: boolean;
  recordAllowed?: boolean;
  faultOnDemand?: boolean;
}): ReceiverState {
  return {
    status: 'none',
    mode: undefined,
    postcopyAllowed: options.postcopyAllowed,
    loaded: [],
    path: undefined,
    sourceDigests: undefined,
    recordAllowed: options.recordAllowed ?? false,
    recorded: false,
    cancelled: false,
    diskPostcopy: false,
    hasDisk: false,
    diskShared: false,
    prehashAsked: false,
    faultOnDemand: options.faultOnDemand ?? false,
    faultOpenAsked: false,
  };
}

function refuse(state: ReceiverState, message: Message, why = ''): MigrationError {
  return new MigrationError(
    'ERR_UNEXPECTED_MESSAGE',
    `${messageName(message.type)} is not allowed while ${state.status}${why ? `: ${why}` : ''}`,
  );
}

/** `state` moved to `status`, checked against the transition table. */
function to(
  state: ReceiverState,
  status: DestStatus,
  changes: Partial<ReceiverState> = {},
): ReceiverState | MigrationError {
  if (!DEST_TRANSITIONS[state.status].includes(status)) {
    return new MigrationError('ERR_BAD_TRANSITION', `transition "${state.status}" → "${status}" is not allowed`);
  }
  return { ...state, ...changes, status };
}

function ok(next: ReceiverState | MigrationError, action: Action): Step {
  return next instanceof MigrationError ? next : { state: next, action };
}

export function step(state: ReceiverState, message: Message): Step {
  if (message.type === MsgType.Cancel && (state.status === 'receiving' || state.status === 'ready')) {
    return ok(to(state, 'failed', { cancelled: true }), { kind: 'cancelled', reason: message.reason });
  }
  switch (state.status) {
    case 'none':
      if (message.type !== MsgType.Setup) return refuse(state, message, 'a migration starts with Setup');
      if (message.mode !== 'precopy' && !state.postcopyAllowed) {
        return new MigrationError(
          'ERR_UNSUPPORTED',
          `Setup asks for ${message.mode}, but post-copy was not negotiated`,
        );
      }
      if (message.disk?.storage === 'postcopy' && !state.postcopyAllowed) {
        return new MigrationError(
          'ERR_UNSUPPORTED',
          'Setup asks for storage post-copy, but post-copy was not negotiated',
        );
      }
      return ok(
        to(state, 'setup', {
          mode: message.mode,
          hasDisk: message.disk !== undefined,
          diskPostcopy: message.disk?.storage === 'postcopy',
          diskShared: message.disk?.storage === 'shared',
        }),
        { kind: 'build', setup: message },
      );
    case 'receiving':
      return receiving(state, message);
    case 'ready': {
      if (message.type !== MsgType.Handoff) return refuse(state, message, 'waiting for Handoff');
      const next = state.path === 'postcopy' ? 'postcopy' : 'running';
      return ok(to(state, next), { kind: 'resume', to: next });
    }
    case 'postcopy':
      if (message.type === MsgType.Pages) return { state, action: { kind: 'none' } };
      if (message.type === MsgType.DiskBlocks && state.diskPostcopy) {
        return { state, action: { kind: 'disk-blocks', message } };
      }
      if (message.type === MsgType.StopCopyEnd && state.sourceDigests === undefined) {
        return {
          state: { ...state, sourceDigests: message.digests },
          action: { kind: 'source-digests', digests: message.digests },
        };
      }
      return refuse(state, message);
    case 'completed':
      return record(state, message);
    case 'failed':
      return state.cancelled ? record(state, message) : refuse(state, message);
    default:
      // setup (the source waits for SetupDone), running, postcopy-paused: nothing.
      return refuse(state, message);
  }
}

/** After the end (completed, or cancelled by the source): the one Record, to countersign. */
function record(state: ReceiverState, message: Message): Step {
  if (message.type !== MsgType.Record) return refuse(state, message);
  if (!state.recordAllowed) return refuse(state, message, 'signed-record was not negotiated');
  if (state.recorded) return refuse(state, message, 'the record came already');
  return { state: { ...state, recorded: true }, action: { kind: 'countersign', message } };
}

function receiving(state: ReceiverState, message: Message): Step {
  switch (message.type) {
    case MsgType.Pages:
      return { state, action: { kind: 'none' } };
    case MsgType.RoundEnd:
      return { state, action: { kind: 'ack-round', round: message.round } };
    case MsgType.DiskBlocks:
      if (!state.hasDisk) return refuse(state, message, 'this VM has no disk');
      return { state, action: { kind: 'disk-blocks', message } };
    case MsgType.DiskAbsent:
      if (!state.diskPostcopy) return refuse(state, message, 'the disk does not move in post-copy');
      return { state, action: { kind: 'disk-absent', bitmap: message.bitmap } };
    case MsgType.DiskAllocated:
      if (!state.diskShared) return refuse(state, message, 'the disk is not on shared storage');
      if (state.prehashAsked) return refuse(state, message, 'DiskAllocated came already');
      return { state: { ...state, prehashAsked: true }, action: { kind: 'disk-prehash', bitmap: message.bitmap } };
    case MsgType.DiskWritten:
      if (!state.diskShared) return refuse(state, message, 'the disk is not on shared storage');
      return { state, action: { kind: 'disk-written', blocks: message.blocks } };
    case MsgType.FaultOpen:
      if (!state.faultOnDemand) return refuse(state, message, 'fault-on-demand was not negotiated');
      if (state.mode !== 'hybrid') return refuse(state, message, `this migration is ${state.mode ?? 'not set up'}`);
      if (state.faultOpenAsked) return refuse(state, message, 'FaultOpen came already');
      return { state: { ...state, faultOpenAsked: true }, action: { kind: 'fault-open' } };
    case MsgType.CpuState:
    case MsgType.DeviceState: {
      const section: StateSection = message.type === MsgType.CpuState ? 'cpu' : 'devices';
      if (state.loaded.includes(section)) return refuse(state, message, `${section} state arrived twice`);
      return { state: { ...state, loaded: [...state.loaded, section] }, action: { kind: 'load', message } };
    }
    case MsgType.StopCopyEnd:
    case MsgType.PostcopyStart: {
      const missing = STATE_SECTIONS.filter((s) => !state.loaded.includes(s));
      if (missing.length) return refuse(state, message, `the ${missing.join(' and ')} state has not arrived`);
      if (message.type === MsgType.StopCopyEnd) {
        return ok(to(state, 'ready', { path: 'precopy' }), { kind: 'verify-precopy', digests: message.digests });
      }
      if ((state.mode === 'precopy' && !state.diskPostcopy) || !state.postcopyAllowed) {
        return refuse(state, message, `this migration is ${state.mode ?? 'not set up'} without post-copy`);
      }
      return ok(to(state, 'ready', { path: 'postcopy' }), {
        kind: 'start-postcopy',
        bitmap: message.bitmap,
        digests: message.digests,
      });
    }
    default:
      return refuse(state, message);
  }
}

const EVENT_MOVES: Readonly<Record<InternalEvent, readonly [readonly DestStatus[], DestStatus]>> = {
  built: [['setup'], 'receiving'],
  resumed: [['running'], 'completed'],
  'all-present': [['postcopy'], 'completed'],
  'link-lost': [['postcopy'], 'postcopy-paused'],
  relinked: [['postcopy-paused'], 'postcopy'],
  failed: [['none', 'setup', 'receiving', 'ready', 'running', 'postcopy', 'postcopy-paused'], 'failed'],
};

/** An internal event; ERR_BAD_TRANSITION (nothing changed) where the state does not allow it. */
export function advance(state: ReceiverState, event: InternalEvent): ReceiverState | MigrationError {
  const [from, status] = EVENT_MOVES[event];
  if (!from.includes(state.status)) {
    return new MigrationError('ERR_BAD_TRANSITION', `${event} is not possible while ${state.status}`);
  }
  return to(state, status);
}
