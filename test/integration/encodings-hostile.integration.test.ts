/**
 * A hostile source's encoded pages (issue 17), end to end: real agents on a plaintext loopback
 * link with a man in the middle that rewrites one encoded Pages batch (rewriting-relay.ts: it keeps
 * the link's half-close, so the source reads the destination's refusal, not a reset) — a
 * delta that overruns its page, a dedup reference to a page the destination never received, a
 * compressed block that inflates short of its pages (hostile-pages.ts). The frame stays well
 * formed, so it is the destination's page applier that refuses the batch: with ERR_BAD_ENCODING,
 * which it tells the source, whose report says so. The destination discards what it built and
 * never runs the VM; the VM runs on at the source with its memory intact, as a never-migrated
 * reference run to the same step proves (the determinism oracle).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient } from '@livemig/shared/control';
import { MsgType, type PagesMsg } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { PAGE_SIZE, parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { overrunDelta, redirectReference, shortBlock } from '../helpers/hostile-pages.ts';
import { startRewritingRelay } from '../helpers/rewriting-relay.ts';
import { ask, hostPort, vmStates } from '../helpers/plain-agents.ts';
import { startAgent, startSourceWithVm, stopAll, type AgentProcess } from '../helpers/processes.ts';
import { explainReport, expectOutcome } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

afterEach(stopAll);

/**
 * Small, so each case takes seconds: `realistic` memory has duplicate pages (references in round
 * 0) and compresses; the hot set is re-sent in later rounds, as deltas (32 MiB fits the default
 * 64 MiB delta cache, so round 0's pages are cached as bases).
 */
const spec = parseVmSpec({ memory: '32MiB', init: 'realistic', workload: 'hotset:wss=2MiB,rate=5000', seed: 17 });
const PAGE_COUNT = spec.memoryBytes / PAGE_SIZE;
/** Every encoding forced on from the first batch (auto would not use them on loopback). */
const ENCODINGS = { xbzrle: 'on', dedup: 'on', compress: 'lz4' } as const;

/** What the relay does to the first batch it can, given the pages it forwarded so far. */
type Rewrite = (message: PagesMsg, forwarded: ReadonlySet<number>) => PagesMsg | undefined;

/** A page of the VM the destination has not received: not forwarded yet, not in this batch (highest first). */
function neverSent(message: PagesMsg, forwarded: ReadonlySet<number>): number {
  const inBatch = new Set(message.pages);
  for (let page = PAGE_COUNT - 1; page >= 0; page--) if (!forwarded.has(page) && !inBatch.has(page)) return page;
  throw new Error('every page of the VM was sent already');
}

const CASES: { name: string; rewrite: Rewrite; refusal: RegExp }[] = [
  {
    name: 'a delta that overruns its page',
    rewrite: (message) => overrunDelta(message, PAGE_SIZE),
    refusal: /XBZRLE delta.*page/,
  },
  {
    name: 'a dedup reference to a page the destination never received',
    rewrite: (message, forwarded) =>
      message.refs?.length ? redirectReference(message, neverSent(message, forwarded)) : undefined,
    refusal: /refers to page \d+, which never arrived/,
  },
  {
    name: 'a compressed block that inflates short of its pages',
    rewrite: (message) => shortBlock(message, PAGE_SIZE),
    refusal: /lz4 batch/,
  },
];

/** The agent's JSON log lines with `event` (its stderr; a line that is not JSON is skipped). */
function logEvents(agent: AgentProcess, event: string): { err?: { code?: string; message?: string } }[] {
  return agent
    .logs()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      try {
        return JSON.parse(line) as { event?: string; err?: { code?: string; message?: string } };
      } catch {
        return {};
      }
    })
    .filter((record) => record.event === event);
}

describe('a hostile source’s encoded pages are refused by the destination', () => {
  it.each(CASES)('$name: ERR_BAD_ENCODING, the VM runs on at the source, intact', async ({ rewrite, refusal }) => {
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('agent')]);
    /** Pages the relay passed on to the destination, whatever their encoding. */
    const forwarded = new Set<number>();
    const kindsSeen = new Set<number>();
    let rewritten: PagesMsg | undefined;
    const relay = await startRewritingRelay(hostPort(dest.listen), (message) => {
      if (message.type !== MsgType.Pages) return message;
      for (const kind of message.kinds) kindsSeen.add(kind);
      const out = rewritten === undefined ? rewrite(message, forwarded) : undefined;
      for (const page of message.pages) forwarded.add(page);
      if (out === undefined) return message;
      rewritten = out;
      return out;
    });
    // What the destination's VM went through: it must never have run there.
    const destEvents = await ControlClient.connect(dest.control);
    const destVmStates: string[] = [];
    destEvents.on('VM_STATE', ({ name, state }) => {
      if (name === 'vm') destVmStates.push(state);
    });
    try {
      const report: MigrationReport = await ask(source, async (client) => {
        const { migrationId } = await client.request('migrate', { vm: 'vm', to: relay.address, params: ENCODINGS });
        return followMigration(client, migrationId, { progress: false });
      });
      expect(relay.rewritten, `no batch to rewrite; page kinds seen: ${[...kindsSeen].join(', ')}`).toBe(1);
      expectOutcome(report, 'failed');
      // The destination's refusal, its code carried to the source in its Error frame.
      expect(report.error?.code, explainReport(report)).toBe('ERR_BAD_ENCODING');
      expect(report.error?.message).toMatch(refusal);
      expect(report.vmRunsOn).toBe('source');
      // The destination said why in its own log, and threw away what it had built.
      const failed = await waitUntil(() => logEvents(dest, 'migration.failed')[0], {
        what: 'the destination logs its failed migration',
      });
      expect(failed.err?.code).toBe('ERR_BAD_ENCODING');
      expect(failed.err?.message).toMatch(refusal);
      await waitUntil(async () => (await vmStates(dest)).length === 0, { what: 'the destination discards its copy' });
      // It was there, being built, and never ran.
      expect(destVmStates).toContain('incoming');
      expect(destVmStates).not.toContain('running');
      // Exactly one copy, running where it was, its memory what a reference run gives.
      expect(await vmStates(source)).toEqual(['running']);
      const oracle = await checkOracle(source.control, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      destEvents.close();
      await relay.close();
    }
  });
});
