/**
 * References to content the destination host already holds (dedup-host) between real agents:
 * two `realistic` VMs booted with different seeds share the "image" half of their duplicate-page
 * pool, so when the destination already runs one (seed A), migrating the other (seed B) in with
 * `--dedup on` sends pages as references to content the destination snapshotted from its VM —
 * the report counts them, each side's memory digest matches, the determinism oracle holds for the
 * migrated VM and the VM already there is undisturbed. A destination with no other VM offers
 * nothing and the report says 0. And a hostile source (a relay rewriting a batch) that names host
 * content the destination did not offer is refused with ERR_BAD_ENCODING: the VM runs on at the
 * source, intact, and the destination's own VM runs on.
 */
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import { HOST_HASH_BYTES, MsgType, type Message, type PagesMsg } from '@livemig/shared/protocol';
import { formatReport, REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { PAGE_SIZE, parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { useFleet } from '../helpers/fleet.ts';
import { startAgent, stopAll, vmArgs, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome, explainReport } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { startRewritingRelay } from '../helpers/rewriting-relay.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);

const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
const workload = 'hotset:wss=1MiB,rate=1000';
const there = parseVmSpec({ memory: '48MiB', init: 'realistic', workload, seed: 101 });
const incoming = parseVmSpec({ memory: '48MiB', init: 'realistic', workload, seed: 202 });

describe('dedup references to content the destination host holds', () => {
  // One pair for both: the destination offers what its VMs hold at each Setup (none left after
  // the first test: every VM is destroyed on both agents after each test).
  const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

  it('a realistic VM migrating to a host that runs another: pages go as references to its content; the oracle holds', async () => {
    const [source, dest] = await pair.boot('vm', incoming);
    const { memoryBytes: memory, init, seed } = there;
    await fleet.ask(dest, (client) => client.request('create-vm', { name: 'there', memory, init, workload, seed }));
    const report = await fleet.migrate(source, dest, { vm: 'vm', params: { dedup: 'on' } });
    expectCompleted(report);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    const dedup = report.encodings?.dedup;
    expect(dedup?.host, explainReport(report)).toBeDefined();
    const host = dedup!.host!;
    expect(host.offered).toBeGreaterThan(0);
    expect(host.pages, JSON.stringify(dedup)).toBeGreaterThan(0);
    expect(host.pages).toBeLessThanOrEqual(dedup!.pages);
    expect(host.tableBytes).toBe(host.offered * (4096 + 32));
    expect(formatReport(report)).toMatch(/\d+ pages sent as references to content the destination host held/);
    expect(report.verify.match).toBe(true);
    const oracle = await fleet.oracle(dest, 'vm', incoming);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    // The VM whose memory was read for the table runs on as if nothing had happened.
    const undisturbed = await fleet.oracle(dest, 'there', there);
    expect(undisturbed.migratedDigest).toBe(undisturbed.referenceDigest);
  });

  it('a destination with no other VM offers nothing: 0 references to host content', async () => {
    const [source, dest] = await pair.boot('vm', incoming);
    const report = await fleet.migrate(source, dest, { vm: 'vm', params: { dedup: 'on' } });
    expectCompleted(report);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.encodings?.dedup?.host, explainReport(report)).toMatchObject({ offered: 0, pages: 0, tableBytes: 0 });
    // References within the VM still work (its own duplicate pages).
    expect(report.encodings!.dedup!.pages).toBeGreaterThan(0);
    expect(report.verify.match).toBe(true);
    const oracle = await fleet.oracle(dest, 'vm', incoming);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});

describe('a hostile source naming host content that was not offered', () => {
  it('is refused with ERR_BAD_ENCODING; the VM runs on at the source, intact, and the one already there runs on', async () => {
    const pageCount = incoming.memoryBytes / PAGE_SIZE;
    const [source, dest] = await Promise.all([
      startAgent('agent', vmArgs('vm', incoming)),
      startAgent('agent', vmArgs('there', there)),
    ]);
    let offered: number | undefined;
    let rewritten: PagesMsg | undefined;
    const [host, port] = dest.listen.split(':') as [string, string];
    // A relay that keeps TCP's half-close (rewriting-relay.ts): the destination's Error reaches
    // the source before its close does, as over a plain link — a relay that resets the source's
    // side at the destination's FIN has the source fail on EPIPE first, now and then.
    const watchSetupDone = (message: Message): void => {
      if (message.type === MsgType.SetupDone) offered = (message.hostHashes?.length ?? 0) / HOST_HASH_BYTES;
    };
    const relay = await startRewritingRelay(
      { host, port: Number(port) },
      (message) => {
        if (message.type !== MsgType.Pages || rewritten || !message.refs) return message;
        // The batch's first reference to host content, pointed at the first entry not offered.
        const k = [...message.refs].findIndex((ref) => ref >= pageCount);
        if (k < 0 || offered === undefined) return message;
        const refs = Uint32Array.from(message.refs);
        refs[k] = pageCount + offered;
        rewritten = { ...message, refs };
        return rewritten;
      },
      watchSetupDone,
    );
    try {
      const report: MigrationReport = await fleet.ask(source, async (client) => {
        const { migrationId } = await client.request('migrate', {
          vm: 'vm',
          to: relay.address,
          params: { dedup: 'on' },
        });
        return followMigration(client, migrationId, { progress: false });
      });
      expect(relay.rewritten, 'no batch with a reference to host content came by').toBe(1);
      expect(offered).toBeGreaterThan(0);
      expectOutcome(report, 'failed');
      expect(report.error?.code, explainReport(report)).toBe('ERR_BAD_ENCODING');
      expect(report.error?.message).toMatch(/refers to host content \d+, which this side did not offer/);
      expect(report.vmRunsOn).toBe('source');
      const states = async (agent: AgentProcess) => (await fleet.vms(agent)).map((vm) => `${vm.name}:${vm.state}`);
      expect(await states(source)).toEqual(['vm:running']);
      const oracle = await checkOracle(source.control, 'vm', incoming);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
      // The destination discards its half-built copy (after its Error frame went out) and keeps its own VM.
      await waitUntil(async () => (await states(dest)).length === 1, { what: 'the destination discards its copy' });
      expect(await states(dest)).toEqual(['there:running']);
    } finally {
      await relay.close();
    }
  });
});
