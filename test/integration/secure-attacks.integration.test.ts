/**
 * Attacks on a secure migration from the network, one named test each (issue 12): two agents in
 * this process with a throwaway PKI, real sockets, the source migrating through a relay that
 * plays the attacker — a wiretap, a bit-flipper, a link cut during post-copy that another agent
 * of the fleet uses to take the migration over. Each attack fails, and the VM ends intact and
 * running on exactly one side, as both agents' `query-vms` say and as digests show that each
 * side computed itself (the migration's verify, or the destination's VM against a reference run).
 * (A changed CPU register is engine.integration.test.ts's.)
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentDaemon } from '@livemig/agent';
import { silentLogger } from '@livemig/shared';
import { connectPeer, msg } from '@livemig/shared/channel';
import { ControlClient, type CommandArgs } from '@livemig/shared/control';
import type { AttachChannel } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { initPki, issueCertificate, loadPki } from '@livemig/shared/security';
import { PAGE_SIZE, parseVmSpec, type VmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { referenceDigestAt } from '../../cli/oracle.ts';
import { startByteRelay, type ByteRelay } from '../helpers/byte-relay.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const LOOPBACK = { host: '127.0.0.1', port: 0 };
const TEST_TIMEOUT_MS = 30_000;
/** The destination's name; the relay is plain TCP, so the source's TLS still checks it end to end. */
const DEST = 'dest-b';

let dir: string;
const daemons: AgentDaemon[] = [];
const relays: ByteRelay[] = [];
/** The certificate name of each secure agent (plaintext agents have none). */
const names = new Map<AgentDaemon, string>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-attacks-'));
  await initPki(dir);
  // src-mallory is an agent of the same fleet, and the destination's --allow-source lets it in.
  for (const name of ['src-a', DEST, 'src-mallory']) await issueCertificate(dir, { name, role: 'agent' });
  await issueCertificate(dir, { name: 'ada', role: 'admin' });
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  await Promise.all(daemons.splice(0).map((daemon) => daemon.stop('test over')));
});

/** A log line of an agent, as pino wrote it. */
interface LogRecord {
  event?: string;
  err?: { message?: string };
}

/**
 * A source `src-a` with `vm` booted from `spec`, and a destination `dest-b`: mutual TLS, or
 * plaintext. With `destLog`, the destination's warnings are kept there.
 */
async function pair(
  spec: VmSpec,
  options: { secure?: boolean; destLog?: LogRecord[] } = {},
): Promise<{ a: AgentDaemon; b: AgentDaemon }> {
  const { secure = true, destLog } = options;
  const start = async (name: string, allowSource?: string[], log?: LogRecord[]): Promise<AgentDaemon> => {
    const security = secure ? { security: { pki: await loadPki(dir, name), allowSource } } : {};
    const logger = log
      ? pino({ level: 'warn' }, { write: (line: string) => void log.push(JSON.parse(line) as LogRecord) })
      : silentLogger();
    const daemon = await AgentDaemon.start({ control: LOOPBACK, listen: LOOPBACK, logger, ...security });
    daemons.push(daemon);
    if (secure) names.set(daemon, name);
    return daemon;
  };
  const [a, b] = await Promise.all([start('src-a'), start(DEST, ['src-*'], destLog)]);
  await a.host.create('vm', spec);
  return { a, b };
}

/** A control client of `daemon` (as admin `ada` over wss, or plain ws), for the length of `run`. */
async function request<T>(daemon: AgentDaemon, run: (client: ControlClient) => Promise<T>): Promise<T> {
  const expectName = names.get(daemon);
  const tls = expectName ? { tls: await loadPki(dir, 'ada'), expectName } : {};
  const client = await ControlClient.connect(daemon.controlUrl, tls);
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

/**
 * Migrate `vm` from a to b through `to` (b's data port, or a relay in front of it): on secure
 * agents, libvirt-style — a ticket from b's prepare-incoming, then migrate on a. `during` runs
 * while the migration does.
 */
async function migrate(
  a: AgentDaemon,
  b: AgentDaemon,
  to: string,
  args: Partial<CommandArgs<'migrate'>> = {},
  during?: (client: ControlClient, migrationId: string) => Promise<void>,
): Promise<MigrationReport> {
  const ticket = names.has(b)
    ? await request(b, async (client) => (await client.request('prepare-incoming', { vm: 'vm', from: 'src-a' })).ticket)
    : undefined;
  return request(a, async (client) => {
    const secure = ticket === undefined ? {} : { ticket, destName: DEST };
    const { migrationId } = await client.request('migrate', { vm: 'vm', to, ...secure, ...args });
    const report = followMigration(client, migrationId, { progress: false });
    await during?.(client, migrationId);
    return report;
  });
}

/** The states `vm` has on `daemon`, as its control API says ([] = it never was here). */
async function vmStates(daemon: AgentDaemon): Promise<string[]> {
  const { vms } = await request(daemon, (client) => client.request('query-vms', {}));
  return vms.filter((vm) => vm.name === 'vm').map((vm) => vm.state);
}

/**
 * The VM runs on `here` and on no other agent (the other holds nothing, or the record of a VM
 * that left), and it is intact: paused there, its digest equals that of a never-migrated VM of
 * the same spec run to the same step.
 */
async function expectIntactOnlyOn(here: AgentDaemon, other: AgentDaemon, spec: VmSpec): Promise<void> {
  expect(await vmStates(here)).toEqual(['running']);
  expect(await vmStates(other)).not.toContain('running');
  const { digest, steps } = await request(here, async (client) => {
    await client.request('stop', { vm: 'vm' });
    return client.request('digest', { vm: 'vm' });
  });
  expect(digest).toBe(await referenceDigestAt(spec, steps));
}

async function relayTo(b: AgentDaemon, options: Parameters<typeof startByteRelay>[1]): Promise<ByteRelay> {
  const [host, port] = b.dataAddress!.split(':') as [string, string];
  const relay = await startByteRelay({ host, port: Number(port) }, options);
  relays.push(relay);
  return relay;
}

describe('attacks on a secure migration', () => {
  it(
    'a relay that captures the stream never sees the guest’s memory',
    async () => {
      const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'idle', seed: 31 });
      /** A known 64-byte pattern the guest holds in every 16th page (256 pages), at byte 1000. */
      const marker = createHash('sha512').update('livemig: the guest’s secret').digest();
      const markedPages = spec.memoryBytes / PAGE_SIZE / 16;
      const occurrences = (bytes: Buffer): number => {
        let count = 0;
        for (let at = bytes.indexOf(marker); at >= 0; at = bytes.indexOf(marker, at + marker.length)) count += 1;
        return count;
      };
      /** Migrate the marked VM through a recording relay; what the relay saw, both ways. */
      const capture = async (secure: boolean): Promise<Buffer[]> => {
        const { a, b } = await pair(spec, { secure });
        const { memory } = a.host.get('vm').vm;
        for (let n = 1; n < spec.memoryBytes / PAGE_SIZE; n += 16) {
          memory.page(n).set(marker, 1000);
          memory.markTouched(n);
        }
        const relay = await relayTo(b, { record: true });
        const report = await migrate(a, b, relay.address);
        expectCompleted(report, secure ? 'mutual TLS' : 'plaintext');
        expect(report.verify.match).toBe(true);
        expect(await vmStates(b)).toEqual(['running']);
        expect(await vmStates(a)).toEqual(['migrated']);
        const toDest = relay.captured('to-dest');
        // The relay really carried the memory (16 MiB of random pages), whatever it could read of it.
        expect(toDest.reduce((sum, bytes) => sum + bytes.length, 0)).toBeGreaterThan(spec.memoryBytes);
        return [...toDest, ...relay.captured('to-source')];
      };

      const overTls = await capture(true);
      expect(overTls.map(occurrences)).toEqual(overTls.map(() => 0));
      // The same migration in plaintext: the relay reads every marked page (so the check above can fail).
      const inClear = await capture(false);
      expect(inClear.map(occurrences).reduce((sum, n) => sum + n, 0)).toBeGreaterThanOrEqual(markedPages);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a relay that flips a byte: TLS fails the connection, the VM keeps running on the source, the next migration succeeds',
    async () => {
      const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 32 });
      const destLog: LogRecord[] = [];
      const { a, b } = await pair(spec, { destLog });
      // Well past the handshake: inside round 0's pages.
      const relay = await relayTo(b, { flip: { direction: 'to-dest', offset: 200 << 10 } });
      const report = await migrate(a, b, relay.address);
      expect(relay.flipped).toBe(true);
      expectOutcome(report, 'failed');
      expect(report.error?.code).toBe('ERR_CONNECTION');
      expect(report.vmRunsOn).toBe('source');
      expect(report.verify.match).not.toBe(true);
      // It was TLS that caught it — the record's authentication tag — before any frame was decoded.
      const failed = await waitUntil(() => destLog.find((record) => record.event === 'migration.failed'), {
        what: 'the destination logs why its migration failed',
      });
      expect(failed.err?.message).toMatch(/decryption failed or bad record mac/);
      // The destination threw away what it had built, and the VM runs on the source.
      await waitUntil(async () => (await vmStates(b)).length === 0, { what: 'the destination discards its copy' });
      expect(await vmStates(a)).toEqual(['running']);

      const again = await migrate(a, b, b.dataAddress!);
      expectCompleted(again, 'the migration after the attack');
      expect(again.verify.match).toBe(true);
      await expectIntactOnlyOn(b, a, spec);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'Attach resume from another identity during post-copy is refused; the migration completes',
    async () => {
      const spec = parseVmSpec({ memory: '32MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 33 });
      const { a, b } = await pair(spec);
      const relay = await relayTo(b, {});
      const destStatuses: string[] = [];
      const attacks: { channel: AttachChannel; answer: unknown }[] = [];
      const destEvents = await ControlClient.connect(b.controlUrl, {
        tls: await loadPki(dir, 'ada'),
        expectName: DEST,
      });
      destEvents.on('MIGRATION', (data) => destStatuses.push(data.status));
      try {
        // 32 MiB at 8 MB/s: four seconds of post-copy push to break in.
        const params = { maxBandwidthBps: 8e6 };
        const report = await migrate(a, b, relay.address, { mode: 'postcopy', params }, async (client, id) => {
          const status = async (): Promise<string | undefined> =>
            (await client.request('query-migrate', { migrationId: id }))?.status;
          await waitUntil(
            async () => {
              const info = await client.request('query-migrate', { migrationId: id });
              return info?.direction === 'outgoing' && info.status === 'postcopy' && info.transferred >= 4 << 20;
            },
            { what: 'post-copy under way' },
          );
          // The link goes down and stays down: both sides pause, the source keeps retrying.
          relay.refusing = true;
          relay.cutAll();
          await waitUntil(() => destStatuses.includes('postcopy-paused'), { what: 'the destination pauses' });
          await waitUntil(async () => (await status()) === 'postcopy-paused', { what: 'the source pauses' });
          // Mallory, with the migration id, tries to take the source's place (and its fault channel).
          for (const channel of ['resume', 'fault'] as const) {
            attacks.push({ channel, answer: await attachAs('src-mallory', b, id, channel) });
          }
          expect(destStatuses.at(-1)).toBe('postcopy-paused');
          // The link comes back; the real source reconnects now.
          relay.refusing = false;
          await client.request('migrate-resume', { migrationId: id });
        });
        for (const { channel, answer } of attacks) {
          expect(answer, `Attach ${channel} from src-mallory`).toMatchObject({
            code: 'ERR_FORBIDDEN',
            message: expect.stringMatching(/belongs to "src-a", not "src-mallory"/),
          });
        }
        expectCompleted(report);
        expect(report.postcopy?.recoveries).toBe(1);
        expect(report.verify.match).toBe(true);
        expect(await vmStates(a)).toEqual(['migrated']);
        await expectIntactOnlyOn(b, a, spec);
      } finally {
        destEvents.close();
      }
    },
    TEST_TIMEOUT_MS,
  );
});

/**
 * Agent `name` of the fleet connects to b's data port (mutual TLS, passing b's allowlist) and
 * sends Attach `channel` for migration `migrationId`: b's answer — the error it refused with,
 * or the first message it sent.
 */
async function attachAs(name: string, b: AgentDaemon, migrationId: string, channel: AttachChannel): Promise<unknown> {
  const [host, port] = b.dataAddress!.split(':') as [string, string];
  const tls = { ...(await loadPki(dir, name)), expectName: DEST };
  const peer = await connectPeer({ host, port: Number(port), agentId: name, logger: silentLogger(), tls });
  try {
    peer.send(msg.attach(migrationId, channel));
    return await peer.next().catch((error: unknown) => error);
  } finally {
    await peer.close();
  }
}
