/**
 * `livemig migrate --max-postcopy-bandwidth` (QEMU's max-postcopy-bandwidth) on real agents: the
 * background push of a post-copy runs at the cap — its post-copy phase takes at least what the
 * cap allows for the pages it pushed — the report states the cap, the VM arrives intact (the
 * determinism oracle); and the flag with --mode precopy is bad input, nothing migrated.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MigrationReport } from '@livemig/shared/report';
import { PAGE_SIZE, parseVmSpec } from '@livemig/shared/vm';
import { checkOracle } from '../../cli/oracle.ts';
import { vmStates } from '../helpers/plain-agents.ts';
import { runCli, startAgent, startSourceWithVm, stopAll } from '../helpers/processes.ts';
import { explainReport, expectCompleted } from '../helpers/report.ts';

afterEach(stopAll);

/** Idle and random: every page is pushed in the background (no faults to speak of), none is zero. */
const spec = parseVmSpec({ memory: '32MiB', init: 'random', workload: 'idle', seed: 43 });
const CAP = 16e6; // bytes/s: 32 MiB in ~2.1 s

describe('migrate --max-postcopy-bandwidth', () => {
  it('paces the post-copy push at the cap; the report says so; the VM arrives intact', async () => {
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('agent')]);
    const run = await runCli([
      'migrate',
      ...['--control', source.control, '--vm', 'vm', '--to', dest.listen],
      ...['--mode', 'postcopy', '--max-postcopy-bandwidth', '16MB/s', '--json'],
    ]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as MigrationReport;
    expectCompleted(report);
    expect(report.switchover?.maxPostcopyBandwidthBps, explainReport(report)).toBe(CAP);
    expect(report.switchover?.maxBandwidthBps).toBeNull();
    const pc = report.postcopy!;
    const pushedBytes = (pc.pagesPushed ?? 0) * PAGE_SIZE;
    expect(pushedBytes, 'most of the VM went by the push').toBeGreaterThan(spec.memoryBytes / 2);
    // The bucket starts with one paced batch: the rest at the cap, never faster.
    expect(pc.postcopyMs).toBeGreaterThanOrEqual(((pushedBytes - 256 * 1024) / CAP) * 1000 * 0.95);
    expect(await vmStates(dest)).toEqual(['running']);
    const oracle = await checkOracle(dest.control, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('with --mode precopy: ERR_INVALID_ARGUMENT, nothing migrated', async () => {
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('agent')]);
    const run = await runCli([
      'migrate',
      ...['--control', source.control, '--vm', 'vm', '--to', dest.listen],
      ...['--mode', 'precopy', '--max-postcopy-bandwidth', '16MB/s'],
    ]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /ERR_INVALID_ARGUMENT: .*max-postcopy-bandwidth applies to --mode postcopy, hybrid or auto/,
    );
    expect(await vmStates(source)).toEqual(['running']);
    expect(await vmStates(dest)).toEqual([]);
  });
});
