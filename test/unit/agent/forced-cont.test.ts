/**
 * `cont --force` after an unconfirmed handoff, decision by decision: what the destination
 * answers and to whom (queryAnswer, Arrivals — agent/src/vm-query.ts), what asking it gives
 * when it answers, refuses, hangs or is gone (askDestination), and what the source then does
 * (contHandler — agent/src/forced-cont.ts), every attempt logged at warn with its caller.
 */
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { MigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import type { ControlCaller } from '@livemig/shared/control';
import type { VmHost, VmInfo, VmState } from '@livemig/shared/host';
import { msg } from '@livemig/shared/protocol';
import { askDestination, contHandler, type DestinationAnswer, type HandedTo } from '../../../agent/src/forced-cont.ts';
import { Arrivals, MAX_ARRIVALS, queryAnswer, type Arrival } from '../../../agent/src/vm-query.ts';

const fromA: Arrival = { migrationId: 'm-1', source: 'host-a' };

describe('queryAnswer (the destination)', () => {
  it.each<[string, VmState | undefined, Arrival | undefined, string | null, string]>([
    ['holds nothing: absent, to anyone', undefined, undefined, 'host-x', 'absent'],
    ['holds nothing though it once came: absent', undefined, fromA, 'host-a', 'absent'],
    ['runs it, asked by its source', 'running', fromA, 'host-a', 'running'],
    ['still incoming (Handoff may be in flight)', 'incoming', fromA, 'host-a', 'incoming'],
    ['left again onward', 'migrated', fromA, 'host-a', 'migrated'],
    ['paused by an operator', 'paused', fromA, 'host-a', 'paused'],
    ['asked by another agent', 'running', fromA, 'host-x', 'ERR_FORBIDDEN'],
    ['a VM of that name that did not arrive by migration', 'running', undefined, 'host-a', 'ERR_FORBIDDEN'],
    ['plaintext: nobody asks nobody', 'running', { migrationId: 'm-1', source: null }, null, 'running'],
    ['plaintext peer, VM from a secure source', 'running', fromA, null, 'ERR_FORBIDDEN'],
  ])('%s', (_, held, arrival, asker, expected) => {
    const answer = queryAnswer({ vm: 'vm', held, arrival, asker });
    expect(answer instanceof MigrationError ? answer.code : answer).toBe(expected);
  });
});

describe('Arrivals', () => {
  const hostHolding = (held: Record<string, VmState>): VmHost =>
    ({ list: () => Object.entries(held).map(([name, state]) => ({ name, state })) }) as unknown as VmHost;

  it('keeps the last arrival per VM, past the end of its migration', () => {
    const arrivals = new Arrivals(hostHolding({}));
    arrivals.record('vm', fromA);
    arrivals.record('vm', { migrationId: 'm-2', source: 'host-b' });
    expect(arrivals.of('vm')).toEqual({ migrationId: 'm-2', source: 'host-b' });
  });

  it('a Setup for a name held here does not make its sender the one who may ask', () => {
    const held: Record<string, VmState> = {};
    const arrivals = new Arrivals(hostHolding(held));
    arrivals.record('vm', fromA);
    held.vm = 'running';
    arrivals.record('vm', { migrationId: 'm-evil', source: 'host-x' });
    expect(arrivals.of('vm')).toEqual(fromA);
  });

  it('is bounded: the oldest are forgotten first', () => {
    const arrivals = new Arrivals(hostHolding({}));
    for (let i = 0; i <= MAX_ARRIVALS; i++) arrivals.record(`vm-${i}`, fromA);
    expect(arrivals.of('vm-0')).toBeUndefined();
    expect(arrivals.of(`vm-${MAX_ARRIVALS}`)).toEqual(fromA);
  });
});

/** A channel whose QueryResult (or failure) is scripted. */
function channelAnswering(result: () => Promise<unknown>): PeerChannel & { sent: unknown[]; closed: boolean } {
  const channel = {
    sent: [] as unknown[],
    closed: false,
    send: (message: unknown) => channel.sent.push(message),
    expect: () => result(),
    close: async () => void (channel.closed = true),
  };
  return channel as unknown as PeerChannel & { sent: unknown[]; closed: boolean };
}

const handed = (connect: HandedTo['connect']): HandedTo => ({ migrationId: 'm-1', to: '10.0.0.2:7070', connect });

describe('askDestination (the source)', () => {
  it('sends Query {migrationId, vm} and returns the state; the connection is closed', async () => {
    const channel = channelAnswering(async () => msg.queryResult('running'));
    expect(
      await askDestination(
        handed(async () => channel),
        'vm',
      ),
    ).toEqual({ reached: true, state: 'running' });
    expect(channel.sent).toEqual([msg.query('m-1', 'vm')]);
    expect(channel.closed).toBe(true);
  });

  it.each([
    ['ERR_FORBIDDEN', 'not yours', 'reached: it will not say'],
    [
      'ERR_UNEXPECTED_MESSAGE',
      'a connection must start with Setup or Attach',
      'cannot be asked (too old to know Query)',
    ],
  ])('%s from the destination (%s): %s', async (code, message, expected) => {
    const channel = channelAnswering(async () => {
      throw new MigrationError(code as 'ERR_FORBIDDEN', message);
    });
    const answer = await askDestination(
      handed(async () => channel),
      'vm',
    );
    const got = answer.reached ? 'refused' in answer && answer.refused.code : answer.why.code;
    expect(got).toBe(code);
    expect(answer.reached).toBe(expected.startsWith('reached'));
  });

  it('refused or hung connections: unreachable, within the time limit; a late connection is closed', async () => {
    const refused = await askDestination(
      handed(async () => {
        throw new MigrationError('ERR_CONNECTION', 'ECONNREFUSED');
      }),
      'vm',
    );
    expect(!refused.reached && refused.why.code).toBe('ERR_CONNECTION');
    const late = channelAnswering(() => new Promise(() => {}));
    let connected!: (channel: PeerChannel) => void;
    const started = performance.now();
    const hung = await askDestination(
      handed(() => new Promise((resolve) => (connected = resolve))),
      'vm',
      50,
    );
    expect(!hung.reached && hung.why.code).toBe('ERR_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(2000);
    connected(late);
    await vi.waitFor(() => expect(late.closed).toBe(true));
  });
});

describe('contHandler: cont --force after an unconfirmed handoff', () => {
  const admin: ControlCaller = { name: 'ada', role: 'admin' };
  const operator: ControlCaller = { name: 'oscar', role: 'operator' };

  function setup(state: VmState, answer: DestinationAnswer | undefined) {
    const records: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) });
    const info: VmInfo = { name: 'vm', state: 'running', steps: 1, memoryBytes: 4096, workload: 'idle' };
    const host = { get: () => ({ state }), cont: vi.fn(() => info) } as unknown as VmHost & {
      cont: ReturnType<typeof vi.fn>;
    };
    const ask = vi.fn(async () => answer!);
    const handler = contHandler({
      host,
      handedTo: () => (answer ? handed(async () => channelAnswering(async () => undefined)) : undefined),
      logger,
      ask,
    });
    const forced = (caller: ControlCaller | null) => handler({ vm: 'vm', force: true }, { caller });
    const warned = () => records.filter((r) => r.event === 'cont.force' && r.level === 40);
    return { host, ask, forced, warned, handler };
  }

  it('a cont without force, or of a VM that was not handed off, asks no one', async () => {
    const plain = setup('paused', { reached: true, state: 'running' });
    await plain.handler({ vm: 'vm' }, { caller: operator });
    await plain.forced(admin);
    expect(plain.ask).not.toHaveBeenCalled();
    expect(plain.host.cont).toHaveBeenCalledTimes(2);
    expect(plain.warned().map((r) => r.outcome)).toEqual(['not-migrated']);
  });

  it('the destination holds no copy: resumed here, logged with the caller', async () => {
    const s = setup('migrated', { reached: true, state: 'absent' });
    await s.forced(admin);
    expect(s.host.cont).toHaveBeenCalledWith('vm', { force: true });
    expect(s.warned()).toEqual([
      expect.objectContaining({ vm: 'vm', caller: 'ada', role: 'admin', outcome: 'resumed', answer: 'absent' }),
    ]);
  });

  it.each<[string, DestinationAnswer]>([
    ['runs it', { reached: true, state: 'running' }],
    ['still has it incoming (a Handoff may yet arrive)', { reached: true, state: 'incoming' }],
    ['sent it on', { reached: true, state: 'migrated' }],
    ['will not say', { reached: true, refused: new MigrationError('ERR_FORBIDDEN', 'not yours') }],
  ])('the destination %s: refused with ERR_VM_RUNS_ELSEWHERE, the VM stays paused', async (_, answer) => {
    const s = setup('migrated', answer);
    await expect(s.forced(admin)).rejects.toMatchObject({ code: 'ERR_VM_RUNS_ELSEWHERE' });
    expect(s.host.cont).not.toHaveBeenCalled();
    expect(s.warned()).toEqual([expect.objectContaining({ caller: 'ada', outcome: 'refused' })]);
  });

  it('the destination cannot be asked: an admin (or a plaintext agent) resumes it on their word; anyone else is refused', async () => {
    const gone: DestinationAnswer = { reached: false, why: new MigrationError('ERR_CONNECTION', 'ECONNREFUSED') };
    const byOperator = setup('migrated', gone);
    await expect(byOperator.forced(operator)).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' });
    expect(byOperator.host.cont).not.toHaveBeenCalled();
    expect(byOperator.warned()).toEqual([expect.objectContaining({ caller: 'oscar', outcome: 'refused' })]);
    for (const caller of [admin, null]) {
      const s = setup('migrated', gone);
      await s.forced(caller);
      expect(s.host.cont).toHaveBeenCalledWith('vm', { force: true });
      expect(s.warned()).toEqual([
        expect.objectContaining({ caller: caller?.name ?? null, outcome: 'resumed-unconfirmed' }),
      ]);
    }
  });

  it('no migration from here handed it anywhere: nobody to ask, the admin decides', async () => {
    const s = setup('migrated', undefined);
    await s.forced(admin);
    expect(s.ask).not.toHaveBeenCalled();
    expect(s.warned()).toEqual([
      expect.objectContaining({ outcome: 'resumed-unconfirmed', answer: 'unreachable: ERR_NOT_FOUND' }),
    ]);
  });
});
