/**
 * `livemig events` against real secure agents: it follows the event stream while a migration
 * runs — one JSON object per line with `--json` (the migration's status changes, rounds and its
 * report, the same migration id), a readable line per event otherwise, `--event` and `--count`
 * to pick and stop — and exits 1 with the coded error when the agent goes away.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseVmSpec } from '@livemig/shared/vm';
import { useFleet } from '../helpers/fleet.ts';
import { runCli, spawnCli, stopAll, type RunningCli } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';
import { expectCompleted } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';

const fleet = useFleet();
afterEach(stopAll);
// The agents of the tests that keep them running: the migration's pair, and its source again for bad input.
const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

/** `livemig events` as the operator, once it says it follows the stream. */
async function follow(control: string, args: readonly string[]): Promise<RunningCli> {
  const follower = spawnCli(['events', '--control', control, ...args, '--pki', fleet.pkiDir, '--name', 'operator']);
  const { child, err } = follower;
  await waitUntil(() => err().includes('following events') || child.exitCode !== null, {
    what: 'livemig events connected',
  });
  expect(child.exitCode, err()).toBeNull();
  return follower;
}

const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=1MiB,rate=5000', seed: 4 });

describe('livemig events', () => {
  it('follows a migration: JSON lines with its status changes, rounds and report; readable lines; --event and --count', async () => {
    const [source, dest] = await pair.boot('vm', spec);
    const json = await follow(source.control, ['--json']);
    const arrivals = await follow(dest.control, ['--event', 'VM_STATE', '--count', '1']);
    const report = await fleet.migrate(source, dest, { vm: 'vm' });
    expectCompleted(report);

    // The report event is the last of the migration: wait for it, then Ctrl-C ends the stream cleanly.
    await waitUntil(() => json.out().includes('"MIGRATION_REPORT"'), { what: 'the report event' });
    json.child.kill('SIGINT');
    expect(await json.exited, json.err()).toBe(0);
    const events = json
      .out()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; timestamp: string; data: Record<string, unknown> });
    for (const e of events) expect(e.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const mine = events.filter((e) => e.data.migrationId === report.migrationId);
    const statuses = mine.filter((e) => e.event === 'MIGRATION').map((e) => e.data.status);
    expect(statuses[0]).toBe('setup');
    expect(statuses.at(-1)).toBe('completed');
    expect(mine.some((e) => e.event === 'MIGRATION_PASS')).toBe(true);
    const last = mine.at(-1)!;
    expect(last.event).toBe('MIGRATION_REPORT');
    expect((last.data.report as { outcome: string }).outcome).toBe('completed');
    expect(events.some((e) => e.event === 'VM_STATE' && e.data.name === 'vm')).toBe(true);

    // --event VM_STATE --count 1: one readable line about the arriving VM, then exit 0.
    expect(await arrivals.exited, arrivals.err()).toBe(0);
    expect(arrivals.out()).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z {2}VM_STATE +vm vm: [a-z-]+\n$/);
  });

  it('exits 1 with the coded error when the agent goes away', async () => {
    const agent = await fleet.agent();
    const follower = await follow(agent.control, []);
    await agent.stop();
    expect(await follower.exited).toBe(1);
    expect(follower.err()).toMatch(/^livemig: ERR_CONNECTION: .*closed the connection/m);
  });

  it('refuses an unknown event name as bad input (exit 2)', async () => {
    const [agent] = await pair.agents();
    const run = await runCli(['events', '--control', agent.control, '--event', 'NOPE']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/NOPE/);
  });
});
