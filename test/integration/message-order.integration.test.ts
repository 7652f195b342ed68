/**
 * The message order docs/protocol.md draws is the order real agents use. Each test migrates a
 * small running VM between real agent processes through a relay that writes down the message
 * names of every connection (test/helpers/recording-relay.ts), and compares what each side sent
 * on each connection with what the doc's mermaid diagram draws for it — read from the doc's
 * text (scripts/protocol-diagrams.ts), so the diagram is the spec and this test holds no order
 * of its own. Heartbeats are left out and runs of one message count as one; a side may end a
 * connection with Error (the doc's rule for every connection).
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import {
  connectionsOf,
  describeStream,
  followsDiagram,
  normalizeStream,
  sequenceDiagrams,
  type ConnectionKind,
  type SequenceDiagram,
} from '../../scripts/protocol-diagrams.ts';
import { PROTOCOL_DOC } from '../../scripts/protocol-docs.ts';
import { ask } from '../helpers/plain-agents.ts';
import { startAgent, stopAll } from '../helpers/processes.ts';
import {
  startRecordingRelay,
  type RecordedConnection,
  type RecordingRelayOptions,
} from '../helpers/recording-relay.ts';
import { expectCompleted } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { waitUntil } from '../helpers/wait.ts';

afterEach(stopAll);
/**
 * One plaintext pair for every migration recorded here (an agent's start is ~1 s of the two
 * cores): each test boots VM `vm` on the source, destroyed on both after it (shared-pair.ts).
 */
const pair = useSharedPair({
  start: () => Promise.all([startAgent('source', [], { kept: true }), startAgent('dest', [], { kept: true })]),
  ask,
});

const DIAGRAMS = new Map(sequenceDiagrams(readFileSync(PROTOCOL_DOC, 'utf8')).map((d) => [d.title, d]));

function diagram(title: string): SequenceDiagram {
  const found = DIAGRAMS.get(title);
  if (!found)
    throw new Error(`docs/protocol.md has no diagram under "${title}" (has: ${[...DIAGRAMS.keys()].join(', ')})`);
  return found;
}

/** What a connection is for, from the first frame the source sent after Hello. */
function kindOf(connection: RecordedConnection): ConnectionKind | undefined {
  const first = connection.frames.find(
    (f) => f.direction === 'to-dest' && f.name !== 'Hello' && f.name !== 'Heartbeat',
  );
  if (first?.name === 'Setup') return 'main';
  if (first?.name === 'Attach') return first.channel === 'fault' ? 'fault' : 'resume';
  return undefined;
}

/** What one side sent on a connection, as the diagrams are compared with it. */
function sentBy(connection: RecordedConnection, side: 'source' | 'dest'): string[] {
  const direction = side === 'source' ? 'to-dest' : 'to-source';
  const names = normalizeStream(connection.frames.filter((f) => f.direction === direction).map((f) => f.name));
  if (names.at(-1) === 'Error') names.pop();
  return names;
}

/** Both sides of `connection` follow `d` (with `prefix`: a beginning of it, for a connection that broke). */
function expectFollows(d: SequenceDiagram, connection: RecordedConnection, options: { prefix?: boolean } = {}): void {
  const kind = kindOf(connection);
  const frames = connection.frames.map((f) => `${f.direction === 'to-dest' ? '→' : '←'}${f.name}`).join(' ');
  expect(kind, `connection ${connection.id} is neither main, fault nor resumed: ${frames}`).toBeDefined();
  for (const side of ['source', 'dest'] as const) {
    const stream = { connection: kind!, from: side };
    const names = sentBy(connection, side);
    expect(
      followsDiagram(d, stream, names, options),
      `connection ${connection.id} (${kind}): the ${side} sent\n  ${names.join(' ')}\n` +
        `but the diagram "${d.title}" draws${options.prefix ? ' (a beginning of)' : ''}\n  ${describeStream(d, stream)}`,
    ).toBe(true);
  }
}

/** A running VM small enough for a few seconds of migration, busy enough to dirty pages and fault. */
const SPEC = parseVmSpec({ memory: '32MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 29 });

/** Migrate SPEC from a source agent to a destination agent through a recording relay; every connection closed. */
async function migrateRecorded(
  mode: 'precopy' | 'postcopy' | 'hybrid',
  params: Record<string, unknown>,
  relayOptions?: RecordingRelayOptions,
): Promise<{ report: MigrationReport; connections: RecordedConnection[] }> {
  const [source, dest] = await pair.boot('vm', SPEC);
  const [host, port] = dest.listen.split(':') as [string, string];
  const relay = await startRecordingRelay({ host, port: Number(port) }, relayOptions);
  try {
    const client = await ControlClient.connect(source.control);
    let report: MigrationReport;
    try {
      const { migrationId } = await client.request('migrate', { vm: 'vm', to: relay.address, mode, params });
      report = await followMigration(client, migrationId, { progress: false });
    } finally {
      client.close();
    }
    await waitUntil(() => relay.connections.every((c) => c.closed), { what: 'every relayed connection closed' });
    return { report, connections: relay.connections };
  } finally {
    await relay.close();
  }
}

describe('the message order of docs/protocol.md is what real agents send', () => {
  it('pre-copy: one main connection, in the order of the "Pre-copy" diagram', async () => {
    const d = diagram('Pre-copy');
    const { report, connections } = await migrateRecorded('precopy', {});
    expectCompleted(report);
    expect(report.rounds.length).toBeGreaterThanOrEqual(2);
    expect(connections.map(kindOf)).toEqual(connectionsOf(d));
    for (const connection of connections) expectFollows(d, connection);
  });

  it.each([
    ['postcopy', {}],
    ['hybrid', { postcopyAfterRounds: 1 }],
  ] as const)(
    '%s: main and fault connections, in the order of the "Post-copy and hybrid" diagram',
    async (mode, params) => {
      const d = diagram('Post-copy and hybrid');
      const { report, connections } = await migrateRecorded(mode, params);
      expectCompleted(report);
      expect(connections.map(kindOf).sort()).toEqual(connectionsOf(d).sort());
      for (const connection of connections) expectFollows(d, connection);
      // fault-on-demand (offered by both): a hybrid asks for the fault thread, a post-copy has it from Setup.
      const main = connections.find((c) => kindOf(c) === 'main')!;
      const asked = (side: 'source' | 'dest', name: string) => sentBy(main, side).filter((n) => n === name).length;
      expect([asked('source', 'FaultOpen'), asked('dest', 'FaultListening')]).toEqual(
        mode === 'hybrid' ? [1, 1] : [0, 0],
      );
    },
  );

  it('recovery: the connections broken mid-push began as "Post-copy and hybrid" draws, the new ones follow "Recovery (post-copy)"', async () => {
    const postcopy = diagram('Post-copy and hybrid');
    const recovery = diagram('Recovery (post-copy)');
    let pushed = 0;
    const { report, connections } = await migrateRecorded(
      'postcopy',
      { maxBandwidthBps: 8e6 }, // 32 MiB at 8 MB/s: seconds of push, a wide window to cut in
      {
        cutBefore: (frame) =>
          frame.direction === 'to-dest' && frame.name === 'Pages' && frame.requestId === 0 && ++pushed === 5,
      },
    );
    expectCompleted(report);
    expect(report.postcopy?.recoveries).toBe(1);
    const broken = connections.filter((c) => c.openAtCut);
    const after = connections.filter((c) => !c.openAtCut);
    expect(broken.map(kindOf).sort()).toEqual(['fault', 'main']);
    for (const connection of broken) expectFollows(postcopy, connection, { prefix: true });
    expect(after.map(kindOf).sort()).toEqual(['fault', 'resume']);
    for (const connection of after) expectFollows(recovery, connection);
  });
});
