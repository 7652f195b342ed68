/**
 * The destination's receiver, pure: every message type against every state (accepted only
 * where the table below says, refused with a code and no change everywhere else), the checks
 * inside a state (state sections before the stop point, post-copy only when negotiated, no
 * duplicates), and that every status is reachable by messages and internal events.
 */
import { describe, expect, it } from 'vitest';
import { MigrationError } from '@livemig/shared';
import { MAX_MSG_TYPE, msg, messageName, MsgType, type Message } from '@livemig/shared/protocol';
import {
  advance,
  initialState,
  step,
  type InternalEvent,
  type ReceiverState,
} from '../../../agent-dest/src/migration/receiver.ts';
import { DEST_STATUSES, type DestStatus } from '../../../agent-dest/src/migration/status.ts';

const BITMAP = new Uint8Array(4);
const DIGESTS = { ram: 'aa', cpu: 'bb', devices: 'cc' };

/** One valid message of every type. */
const SAMPLES: Record<Exclude<MsgType, MsgType.Invalid>, Message> = {
  [MsgType.Hello]: msg.hello({ agentId: 's', capabilities: [] }),
  [MsgType.Welcome]: msg.welcome({ version: 1, agentId: 'd', capabilities: [] }),
  [MsgType.Setup]: msg.setup({
    migrationId: 'm',
    mode: 'hybrid',
    vm: { name: 'vm', memoryBytes: 131072, pageSize: 4096, workload: 'idle', init: 'zero', seed: 1, nic: '' },
  }),
  [MsgType.SetupDone]: msg.setupDone(1),
  [MsgType.Pages]: msg.pages({ round: 0, pages: [1], kinds: [1] }),
  [MsgType.RoundEnd]: msg.roundEnd({ round: 3, pages: 1, bytes: 0 }),
  [MsgType.CpuState]: msg.cpuState(10, new Uint8Array(8)),
  [MsgType.DeviceState]: msg.deviceState({ version: 1 }),
  [MsgType.StopCopyEnd]: msg.stopCopyEnd(DIGESTS),
  [MsgType.Ready]: msg.ready(DIGESTS),
  [MsgType.Handoff]: msg.handoff(),
  [MsgType.Resumed]: msg.resumed(1),
  [MsgType.PageRequest]: msg.pageRequest(1, [2]),
  [MsgType.Complete]: msg.complete({}, DIGESTS),
  [MsgType.Cancel]: msg.cancel('operator'),
  [MsgType.Error]: msg.error('ERR_INTERNAL', 'x'),
  [MsgType.Heartbeat]: msg.heartbeat(1),
  [MsgType.Attach]: msg.attach('m', 'fault'),
  [MsgType.PostcopyStart]: msg.postcopyStart(BITMAP, { cpu: 'bb', devices: 'cc' }),
  [MsgType.Missing]: msg.missing(BITMAP),
  [MsgType.RoundAck]: msg.roundAck(1),
  [MsgType.Record]: msg.record(new Uint8Array([0x7b, 0x7d]), { value: 'sig', certificate: 'pem' }),
  [MsgType.Countersignature]: msg.countersignature({ refused: 'no' }),
  [MsgType.Query]: msg.query('m-1', 'vm'),
  [MsgType.QueryResult]: msg.queryResult('running'),
  [MsgType.DiskBlocks]: msg.diskBlocks({ blocks: [1], data: new Uint8Array(4096) }),
  [MsgType.DiskAck]: msg.diskAck(1),
  [MsgType.DiskRequest]: msg.diskRequest(1, [2]),
  [MsgType.DiskAbsent]: msg.diskAbsent(BITMAP),
  [MsgType.DiskMissing]: msg.diskMissing(BITMAP),
  [MsgType.DiskAllocated]: msg.diskAllocated(BITMAP),
  [MsgType.DiskPrehashed]: msg.diskPrehashed(5, 'done'),
  [MsgType.DiskWritten]: msg.diskWritten([3]),
  [MsgType.FaultOpen]: msg.faultOpen(),
  [MsgType.FaultListening]: msg.faultListening({ port: 4000, token: 'ab'.repeat(32) }),
};

/** A state of each status, reached the way a migration reaches it (hybrid, both state sections loaded where relevant). */
function stateIn(status: DestStatus, path: 'precopy' | 'postcopy' = 'postcopy'): ReceiverState {
  const base = { ...initialState({ postcopyAllowed: true }), mode: 'hybrid' as const };
  const loaded = ['cpu', 'devices'] as const;
  switch (status) {
    case 'none':
      return initialState({ postcopyAllowed: true });
    case 'setup':
    case 'completed':
    case 'failed':
      return { ...base, status };
    case 'receiving':
      return { ...base, status, loaded: [...loaded] };
    case 'ready':
    case 'running':
    case 'postcopy':
    case 'postcopy-paused':
      return { ...base, status, loaded: [...loaded], path };
  }
}

/** What each status accepts; everything else is refused. */
const ACCEPTS: Record<DestStatus, readonly MsgType[]> = {
  none: [MsgType.Setup],
  setup: [],
  // CpuState/DeviceState are refused here only because stateIn() loaded both already (see below).
  receiving: [MsgType.Pages, MsgType.RoundEnd, MsgType.StopCopyEnd, MsgType.PostcopyStart, MsgType.Cancel],
  ready: [MsgType.Handoff, MsgType.Cancel],
  running: [],
  postcopy: [MsgType.Pages, MsgType.StopCopyEnd],
  'postcopy-paused': [],
  completed: [],
  failed: [],
};

const TYPES = Object.keys(SAMPLES).map(Number) as Array<Exclude<MsgType, MsgType.Invalid>>;

describe('receiver step: every message type × every status', () => {
  it('covers every message type the protocol has', () => {
    expect(TYPES).toHaveLength(MAX_MSG_TYPE);
  });

  for (const status of DEST_STATUSES) {
    for (const type of TYPES) {
      const accepted = ACCEPTS[status].includes(type);
      it(`${status} ${accepted ? 'accepts' : 'refuses'} ${messageName(type)}`, () => {
        const state = stateIn(status);
        const frozen = structuredClone(state);
        const result = step(state, SAMPLES[type]);
        if (accepted) {
          expect(result).not.toBeInstanceOf(MigrationError);
        } else {
          expect(result).toBeInstanceOf(MigrationError);
          expect((result as MigrationError).code).toMatch(/^ERR_(UNEXPECTED_MESSAGE|UNSUPPORTED)$/);
        }
        expect(state).toEqual(frozen); // pure: the input state never changes
      });
    }
  }
});

describe('receiver step: the checks inside a state', () => {
  const receiving = (loaded: Array<'cpu' | 'devices'>, mode: 'precopy' | 'hybrid' = 'hybrid'): ReceiverState => ({
    ...initialState({ postcopyAllowed: true }),
    status: 'receiving',
    mode,
    loaded,
  });

  it('StopCopyEnd before the CPU state is refused (it used to fail only after Handoff)', () => {
    const result = step(receiving(['devices']), SAMPLES[MsgType.StopCopyEnd]);
    expect((result as MigrationError).code).toBe('ERR_UNEXPECTED_MESSAGE');
    expect((result as MigrationError).message).toMatch(/cpu state has not arrived/);
  });

  it('PostcopyStart before the device state is refused', () => {
    const result = step(receiving(['cpu']), SAMPLES[MsgType.PostcopyStart]);
    expect((result as MigrationError).message).toMatch(/devices state has not arrived/);
  });

  it('CPU and device state load once each, in either order; a second copy is refused', () => {
    let state = receiving([]);
    for (const type of [MsgType.DeviceState, MsgType.CpuState] as const) {
      const result = step(state, SAMPLES[type]);
      if (result instanceof MigrationError) throw result;
      expect(result.action.kind).toBe('load');
      state = result.state;
    }
    expect(state.loaded).toEqual(['devices', 'cpu']);
    expect((step(state, SAMPLES[MsgType.CpuState]) as MigrationError).message).toMatch(/arrived twice/);
  });

  it('PostcopyStart in a pre-copy migration, or without post-copy negotiated, is refused', () => {
    expect(step(receiving(['cpu', 'devices'], 'precopy'), SAMPLES[MsgType.PostcopyStart])).toBeInstanceOf(
      MigrationError,
    );
    const noPostcopy = { ...receiving(['cpu', 'devices']), postcopyAllowed: false };
    expect(step(noPostcopy, SAMPLES[MsgType.PostcopyStart])).toBeInstanceOf(MigrationError);
  });

  it('disk messages: DiskBlocks only for a VM with a disk (and in post-copy only for a post-copy disk); DiskAbsent only for a post-copy disk', () => {
    const withDisk = { ...receiving(['cpu', 'devices']), hasDisk: true };
    expect(step(withDisk, SAMPLES[MsgType.DiskBlocks])).toMatchObject({ action: { kind: 'disk-blocks' } });
    expect(step(withDisk, SAMPLES[MsgType.DiskAbsent])).toBeInstanceOf(MigrationError); // a copied disk
    const postcopyDisk = { ...withDisk, diskPostcopy: true };
    expect(step(postcopyDisk, SAMPLES[MsgType.DiskAbsent])).toMatchObject({ action: { kind: 'disk-absent' } });
    expect(step({ ...stateIn('postcopy'), hasDisk: true }, SAMPLES[MsgType.DiskBlocks])).toBeInstanceOf(MigrationError);
    expect(
      step({ ...stateIn('postcopy'), hasDisk: true, diskPostcopy: true }, SAMPLES[MsgType.DiskBlocks]),
    ).toMatchObject({ action: { kind: 'disk-blocks' } });
  });

  it('shared storage: DiskAllocated once, DiskWritten any number of times, only for a disk on shared storage', () => {
    const copied = { ...receiving(['cpu', 'devices']), hasDisk: true };
    expect(step(copied, SAMPLES[MsgType.DiskAllocated])).toBeInstanceOf(MigrationError);
    expect(step(copied, SAMPLES[MsgType.DiskWritten])).toBeInstanceOf(MigrationError);
    const shared = { ...copied, diskShared: true };
    const first = step(shared, SAMPLES[MsgType.DiskAllocated]);
    expect(first).toMatchObject({ action: { kind: 'disk-prehash' }, state: { prehashAsked: true } });
    expect(step((first as { state: ReceiverState }).state, SAMPLES[MsgType.DiskAllocated])).toBeInstanceOf(
      MigrationError,
    );
    const written = step(shared, SAMPLES[MsgType.DiskWritten]);
    expect(written).toMatchObject({ action: { kind: 'disk-written', blocks: new Uint32Array([3]) } });
    expect(step((written as { state: ReceiverState }).state, SAMPLES[MsgType.DiskWritten])).toMatchObject({
      action: { kind: 'disk-written' },
    });
    expect(step({ ...stateIn('ready', 'precopy'), diskShared: true }, SAMPLES[MsgType.DiskWritten])).toBeInstanceOf(
      MigrationError,
    ); // after StopCopyEnd: too late
  });

  it('FaultOpen: once, in a hybrid migration, only with fault-on-demand negotiated', () => {
    const onDemand = { ...receiving([]), faultOnDemand: true };
    const first = step(onDemand, SAMPLES[MsgType.FaultOpen]);
    expect(first).toMatchObject({
      action: { kind: 'fault-open' },
      state: { faultOpenAsked: true, status: 'receiving' },
    });
    const again = step((first as { state: ReceiverState }).state, SAMPLES[MsgType.FaultOpen]);
    expect((again as MigrationError).message).toMatch(/FaultOpen came already/);
    const notNegotiated = step(receiving([]), SAMPLES[MsgType.FaultOpen]);
    expect((notNegotiated as MigrationError).message).toMatch(/fault-on-demand was not negotiated/);
    const precopy = step({ ...receiving([], 'precopy'), faultOnDemand: true }, SAMPLES[MsgType.FaultOpen]);
    expect((precopy as MigrationError).message).toMatch(/this migration is precopy/);
  });

  it('memory pre-copy with a post-copy disk switches over by PostcopyStart (no page absent, the disk fetched after)', () => {
    const precopyMemory = { ...receiving(['cpu', 'devices'], 'precopy'), hasDisk: true, diskPostcopy: true };
    expect(step(precopyMemory, SAMPLES[MsgType.PostcopyStart])).toMatchObject({
      state: { status: 'ready', path: 'postcopy' },
      action: { kind: 'start-postcopy' },
    });
  });

  it('Setup with a disk records whether it has one and whether it moves in post-copy', () => {
    const setup = msg.setup({
      migrationId: 'm',
      mode: 'precopy',
      vm: { name: 'vm', memoryBytes: 131072, pageSize: 4096, workload: 'disk', init: 'zero', seed: 1, nic: '' },
      disk: { sizeBytes: 1 << 20, storage: 'postcopy' },
    });
    expect(step(initialState({ postcopyAllowed: true }), setup)).toMatchObject({
      state: { hasDisk: true, diskPostcopy: true, diskShared: false },
    });
    const onShare = { ...setup, disk: { sizeBytes: 1 << 20, storage: 'shared' as const } };
    expect(step(initialState({ postcopyAllowed: true }), onShare)).toMatchObject({
      state: { hasDisk: true, diskPostcopy: false, diskShared: true },
    });
    expect((step(initialState({ postcopyAllowed: false }), setup) as MigrationError).code).toBe('ERR_UNSUPPORTED');
  });

  it('Setup for post-copy without post-copy negotiated is refused with ERR_UNSUPPORTED', () => {
    const result = step(initialState({ postcopyAllowed: false }), SAMPLES[MsgType.Setup]);
    expect((result as MigrationError).code).toBe('ERR_UNSUPPORTED');
  });

  it('StopCopyEnd leads to pre-copy at Handoff, PostcopyStart to post-copy (a hybrid may end either way)', () => {
    for (const [type, expected] of [
      [MsgType.StopCopyEnd, 'running'],
      [MsgType.PostcopyStart, 'postcopy'],
    ] as const) {
      const ready = step(receiving(['cpu', 'devices']), SAMPLES[type]);
      if (ready instanceof MigrationError) throw ready;
      expect(ready.state.status).toBe('ready');
      const resumed = step(ready.state, SAMPLES[MsgType.Handoff]);
      if (resumed instanceof MigrationError) throw resumed;
      expect(resumed.state.status).toBe(expected);
      expect(resumed.action).toEqual({ kind: 'resume', to: expected });
    }
  });

  it('post-copy takes the source digests once; a second StopCopyEnd is refused', () => {
    const first = step(stateIn('postcopy'), SAMPLES[MsgType.StopCopyEnd]);
    if (first instanceof MigrationError) throw first;
    expect(first.action).toEqual({ kind: 'source-digests', digests: DIGESTS });
    expect(step(first.state, SAMPLES[MsgType.StopCopyEnd])).toBeInstanceOf(MigrationError);
  });

  it('a completed migration takes one Record, only with signed-record negotiated', () => {
    const completed = { ...stateIn('completed'), recordAllowed: true };
    const first = step(completed, SAMPLES[MsgType.Record]);
    if (first instanceof MigrationError) throw first;
    expect(first.action).toEqual({ kind: 'countersign', message: SAMPLES[MsgType.Record] });
    expect((step(first.state, SAMPLES[MsgType.Record]) as MigrationError).message).toMatch(/came already/);
    const notNegotiated = step(stateIn('completed'), SAMPLES[MsgType.Record]) as MigrationError;
    expect(notNegotiated.message).toMatch(/signed-record was not negotiated/);
    // Before the migration completed there is nothing to sign.
    const running = { ...stateIn('running'), recordAllowed: true };
    expect(step(running, SAMPLES[MsgType.Record])).toBeInstanceOf(MigrationError);
  });

  it('a migration the source cancelled takes one Record (to countersign the cancellation); one that failed here takes none', () => {
    const cancelled = step({ ...stateIn('receiving'), recordAllowed: true }, SAMPLES[MsgType.Cancel]);
    if (cancelled instanceof MigrationError) throw cancelled;
    expect(cancelled.state).toMatchObject({ status: 'failed', cancelled: true });
    expect(cancelled.action).toEqual({ kind: 'cancelled', reason: 'operator' });
    const record = step(cancelled.state, SAMPLES[MsgType.Record]);
    if (record instanceof MigrationError) throw record;
    expect(record.action).toEqual({ kind: 'countersign', message: SAMPLES[MsgType.Record] });
    expect((step(record.state, SAMPLES[MsgType.Record]) as MigrationError).message).toMatch(/came already/);
    const failedHere = { ...stateIn('failed'), recordAllowed: true };
    expect(step(failedHere, SAMPLES[MsgType.Record])).toBeInstanceOf(MigrationError);
  });
  it('RoundEnd is acknowledged with its round', () => {
    const result = step(receiving([]), SAMPLES[MsgType.RoundEnd]);
    if (result instanceof MigrationError) throw result;
    expect(result.action).toEqual({ kind: 'ack-round', round: 3 });
  });

  it('internal events are checked too: nothing changes where a state does not allow one', () => {
    expect(advance(stateIn('receiving'), 'resumed')).toBeInstanceOf(MigrationError);
    expect(advance(stateIn('completed'), 'failed')).toBeInstanceOf(MigrationError);
    expect(advance(stateIn('failed'), 'failed')).toBeInstanceOf(MigrationError);
  });
});

describe('every status is reachable', () => {
  it('by messages and internal events from none', () => {
    const seen = new Set<DestStatus>();
    const visited = new Set<string>();
    const frontier: ReceiverState[] = [initialState({ postcopyAllowed: true })];
    const events: InternalEvent[] = ['built', 'resumed', 'all-present', 'link-lost', 'relinked', 'failed'];
    const extra = [msg.cpuState(1, new Uint8Array(8)), msg.deviceState({})];
    while (frontier.length) {
      const state = frontier.pop()!;
      const key = JSON.stringify(state);
      if (visited.has(key)) continue;
      visited.add(key);
      seen.add(state.status);
      for (const message of [...Object.values(SAMPLES), ...extra]) {
        const result = step(state, message);
        if (!(result instanceof MigrationError) && result.state !== state) frontier.push(result.state);
      }
      for (const event of events) {
        const next = advance(state, event);
        if (!(next instanceof MigrationError)) frontier.push(next);
      }
    }
    expect([...seen].sort()).toEqual([...DEST_STATUSES].sort());
  });
});
