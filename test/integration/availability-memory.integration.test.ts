/**
 * Availability, guest memory (issue 13), measured on a real agent process: its resident memory
 * (VmRSS in /proc/<pid>/status) while a peer that passes every check — mutual TLS as an allowed
 * agent of the fleet, a valid ticket for each VM — asks for more guest memory than the
 * destination's budget allows, in parallel with a legitimate migration; and after an incoming
 * VM is discarded. The destination runs `livemig agent --pki … --max-guest-memory …`; the
 * legitimate source is another agent process, driven by an operator with prepare-incoming and
 * migrate; the rogue peer and the operator's clients are in this process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isMigrationError } from '@livemig/shared';
import type { ControlClient, MigrateParams } from '@livemig/shared/control';
import { MsgType } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { loadPki } from '@livemig/shared/security';
import { followMigration } from '../../cli/follow-migration.ts';
import { createThrowawayPki, type ThrowawayPki } from '../../cli/throwaway-pki.ts';
import { startAgent, stopAll, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { sendRogueSetup, type RoguePeer } from '../helpers/rogue-peer.ts';
import { MiB, rssBytes, sampleRss } from '../helpers/rss.ts';
import { waitUntil } from '../helpers/wait.ts';

const SOURCE = '127.0.0.1';
const DEST = '127.0.0.2';
const ROGUE = 'rogue-agent';
const BUDGET = 512 * MiB;
const TEST_TIMEOUT_MS = 90_000;

let pki: ThrowawayPki;
beforeAll(async () => {
  const agents = [SOURCE, DEST, ROGUE].map((name) => ({ name, role: 'agent' as const }));
  pki = await createThrowawayPki([...agents, { name: 'oscar', role: 'operator' }], 'livemig-availability-');
});
afterAll(() => pki.remove());
afterEach(stopAll);

/** The destination: a real agent process with a guest-memory budget; the fleet's agents may migrate to it. */
function startDest(extra: string[] = [], budget = BUDGET): Promise<AgentProcess> {
  return startAgent('agent', [
    ...[...pki.flags(DEST), '--listen', `${DEST}:0`, '--control', `${DEST}:0`],
    ...['--allow-source', '127.0.0.*', '--allow-source', ROGUE],
    ...['--max-guest-memory', String(budget), ...extra],
  ]);
}

/** A source agent process hosting `vm` (random memory, idle guest: it converges in one round). */
function startSource(memory: string): Promise<AgentProcess> {
  const vm = ['--vm', 'vm', '--memory', memory, '--init', 'random', '--workload', 'idle', '--seed', '5'];
  return startAgent('agent', [...pki.flags(SOURCE), ...vm]);
}

/** The operator's control connection to an agent (wss, client certificate; the agent is named by its address). */
function operator(agent: AgentProcess): Promise<ControlClient> {
  return pki.connect(agent.control, 'oscar', new URL(agent.control).hostname);
}

async function ticket(dest: AgentProcess, vm: string, from: string): Promise<string> {
  const client = await operator(dest);
  try {
    return (await client.request('prepare-incoming', { vm, from })).ticket;
  } finally {
    client.close();
  }
}

/** What the destination hosts, by name and state. */
async function hosted(dest: AgentProcess): Promise<Record<string, string>> {
  const client = await operator(dest);
  try {
    const { vms } = await client.request('query-vms', {});
    return Object.fromEntries(vms.map((vm) => [vm.name, vm.state]));
  } finally {
    client.close();
  }
}

/** Start migrating `vm` from `source` to `dest` with a ticket, as the operator: the client that follows it. */
async function startMigration(source: AgentProcess, dest: AgentProcess, params: MigrateParams) {
  const withTicket = await ticket(dest, 'vm', SOURCE);
  const client = await operator(source);
  const args = { vm: 'vm', to: dest.listen, ticket: withTicket, destName: DEST, params };
  const { migrationId } = await client.request('migrate', args);
  return { client, migrationId };
}

/** Migrate `vm` from `source` to `dest` with a ticket, as the operator; resolves with the report. */
async function migrate(source: AgentProcess, dest: AgentProcess, params: MigrateParams = {}): Promise<MigrationReport> {
  const { client, migrationId } = await startMigration(source, dest, params);
  try {
    return await followMigration(client, migrationId, { progress: false });
  } finally {
    client.close();
  }
}

/** The rogue agent asks `dest` for a VM of `memoryBytes` (its ticket is valid), every page to be pre-faulted. */
async function rogueSetup(dest: AgentProcess, name: string, memoryBytes: number): Promise<RoguePeer> {
  const tls = { ...(await loadPki(pki.dir, ROGUE)), expectName: DEST };
  return sendRogueSetup(dest.listen, tls, { name, memoryBytes, ticket: await ticket(dest, name, ROGUE) });
}

const codeOf = (answer: unknown): string =>
  isMigrationError(answer) ? answer.code : (answer as { type: number }).type === MsgType.SetupDone ? 'SetupDone' : '?';

describe('availability: the guest-memory budget of a real agent process', () => {
  it(
    'a memory bomb of Setups past the budget is refused before allocation (ERR_NO_MEMORY); RSS stays within budget + 10%; a legitimate migration in parallel completes, verified',
    async () => {
      const [dest, source] = await Promise.all([startDest(['--setup-timeout', '3s']), startSource('64MiB')]);
      const pid = dest.child.pid!;
      const baseline = rssBytes(pid);
      const rss = sampleRss(pid);
      try {
        // The legitimate migration first holds its 64 MiB of the budget (observed on the destination)…
        const legit = migrate(source, dest, { maxBandwidthBps: 32 * MiB });
        await waitUntil(async () => (await hosted(dest)).vm !== undefined, {
          what: 'the VM arriving on the destination',
          intervalMs: 100,
        });
        // …then the bomb: 8 GiB at once, and four 160 MiB VMs, each of which alone would fit.
        const bombs = await Promise.all([
          rogueSetup(dest, 'bomb-huge', 8 * 1024 * MiB),
          ...[0, 1, 2, 3].map((n) => rogueSetup(dest, `bomb-${n}`, 160 * MiB)),
        ]);
        const answers = await Promise.all(bombs.map((bomb) => bomb.answer.then(codeOf)));
        // Each VM is charged its memory + 32 MiB: 96 + 192 + 192 = 480 MiB fit 512; a third bomb does
        // not, nor does 8 GiB.
        expect(answers[0]).toBe('ERR_NO_MEMORY');
        expect(answers.slice(1).sort()).toEqual(['ERR_NO_MEMORY', 'ERR_NO_MEMORY', 'SetupDone', 'SetupDone']);
        const report = await legit;
        expectCompleted(report);
        expect(report.verify.match).toBe(true);
        // The admitted bombs send heartbeats, never a page: discarded at the setup deadline.
        const admitted = bombs.filter((_, n) => answers[n] === 'SetupDone');
        for (const bomb of admitted) {
          const { error, at } = await bomb.ended;
          expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
          expect(at - bomb.sentAt).toBeGreaterThanOrEqual(3000 - 50);
        }
        await waitUntil(async () => JSON.stringify(await hosted(dest)) === '{"vm":"running"}', {
          what: 'only the migrated VM left on the destination',
          intervalMs: 100,
        });
        const peak = rss.peak;
        console.info(
          `memory bomb: destination VmRSS baseline ${mib(baseline)}, peak ${mib(peak)}: +${mib(peak - baseline)} ` +
            `(budget ${mib(BUDGET)}, bound +${mib(BUDGET * 1.1)}; the bomb asked for ${mib(8 * 1024 * MiB + 4 * 160 * MiB)})`,
        );
        // What the agent holds for guests (RSS above the idle agent's own ~110 MiB) stays within the budget + 10%.
        // Not the whole RSS: the budget is guest memory, and the agent's own ~110 MiB is not a guest's (a
        // 512 MiB budget filled to the brim is ~600 MiB of RSS, seen: the whole RSS bound would only hold
        // for budgets above ~1.15 GiB, where 10% outgrows the agent's own memory).
        expect(peak - baseline).toBeLessThanOrEqual(BUDGET * 1.1);
        // Not vacuous: the two admitted bombs were allocated and pre-faulted (320 MiB), besides the VM.
        expect(peak - baseline).toBeGreaterThan(64 * MiB + 160 * MiB);
        await Promise.all(bombs.map((bomb) => bomb.channel.close()));
      } finally {
        rss.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'an incoming VM discarded when its source dies gives its memory back: RSS returns near the baseline, and the next migration completes',
    async () => {
      const [dest, source] = await Promise.all([startDest([], 1024 * MiB), startSource('512MiB')]);
      const pid = dest.child.pid!;
      const baseline = rssBytes(pid);
      // Slow enough to be caught mid-flight: 512 MiB at 32 MiB/s.
      const { client } = await startMigration(source, dest, { maxBandwidthBps: 32 * MiB });
      const during = await waitUntil(() => rssBytes(pid) > baseline + 256 * MiB && rssBytes(pid), {
        what: 'half of the VM in the destination’s memory',
      });
      expect(await hosted(dest)).toEqual({ vm: 'incoming' });
      source.child.kill('SIGKILL');
      const killedAt = performance.now();
      client.close();
      // Within seconds of the source's death (the deadline of this wait), RSS is back within 64 MiB
      // (an eighth of the VM: the agent's own heap moves too) of the baseline.
      const after = await waitUntil(
        () => {
          const now = rssBytes(pid);
          return now <= baseline + 64 * MiB && now;
        },
        { what: 'the destination’s RSS back near its baseline', timeoutMs: 15_000 },
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}; VmRSS ${mib(rssBytes(pid))}, baseline ${mib(baseline)}`);
      });
      const backMs = performance.now() - killedAt;
      expect(await hosted(dest)).toEqual({});
      console.info(
        `discarded VM: destination VmRSS baseline ${mib(baseline)}, mid-migration ${mib(during)}, ` +
          `${mib(after)} ${Math.round(backMs)} ms after the source was killed`,
      );
      // It serves the next migration.
      const next = await startSource('64MiB');
      const second = await migrate(next, dest);
      expectCompleted(second);
      expect(second.verify.match).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );
});

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}
