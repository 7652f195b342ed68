/**
 * `livemig query-dirty-rate` against a real secure agent process, run by a viewer (the role of
 * the other query-* commands): a VM writing at a known rate is measured within tolerance of the
 * truth — the agent's own `livemig_vm_dirty_pages_per_second`, which harvests that VM's dirty log
 * once a second (so the page-sampling estimate is checked against the dirty log over the same
 * seconds, not against the workload's nominal rate) — and an idle VM reports 0. Asked of a VM
 * while it migrates out, it answers and the migration completes with nothing lost (the
 * determinism oracle): it reads memory only, the dirty log stays the migration's. Bad arguments
 * are bad input (exit 2); a VM that is not there is ERR_NOT_FOUND (exit 1).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DirtyRateInfo } from '@livemig/shared/control';
import { issueCertificate } from '@livemig/shared/security';
import { PAGE_SIZE, parseVmSpec } from '@livemig/shared/vm';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { runCli, stopAll, vmArgs } from '../helpers/processes.ts';
import { parsePrometheusText, value } from '../helpers/prometheus-text.ts';
import { expectCompleted } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
beforeAll(() => issueCertificate(fleet.pkiDir, { name: 'victor', role: 'viewer' }));
afterEach(stopAll);
// The agents of the tests that need no flags of their own: the migration's pair, then its source for bad input.
const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

/** The dirty rate the agent's metrics sampler saw over its last second, MB/s; undefined before its first. */
async function gaugeMBps(agent: FleetAgent, vm: string): Promise<number | undefined> {
  const response = await fetch(agent.metrics!);
  const pages = value(parsePrometheusText(await response.text()), 'livemig_vm_dirty_pages_per_second', { vm });
  return pages === undefined ? undefined : (pages * PAGE_SIZE) / 1e6;
}

/** `livemig query-dirty-rate` as the viewer. */
function asViewer(agent: FleetAgent, args: readonly string[]): ReturnType<typeof runCli> {
  return runCli(['query-dirty-rate', '--control', agent.control, ...args, '--pki', fleet.pkiDir, '--name', 'victor']);
}

describe('livemig query-dirty-rate', () => {
  it('a VM writing at a known rate: the estimate is within tolerance of its dirty log; an idle one reads 0', async () => {
    // 16000 stores/s over 65536 pages: ~21% of memory (~14000 distinct pages, ~58 MB/s) a second.
    const spec = parseVmSpec({ memory: '256MiB', init: 'zero', workload: 'uniform:rate=16000', seed: 3 });
    const agent = await fleet.agent({ args: [...vmArgs('busy', spec), '--metrics', '127.0.0.1:0'] });
    const created = await fleet.cli(
      ['create-vm', '--control', agent.control, '--vm', 'idle', '--memory', '64MiB', '--workload', 'idle'],
      'admin',
    );
    expect(created.code, created.stderr).toBe(0);
    await waitUntil(() => gaugeMBps(agent, 'busy'), { what: 'the first dirty rate of busy' });

    // The truth: every value the gauge takes from just before the measurement to just after it.
    const seen: number[] = [];
    let measuring = true;
    const watching = (async () => {
      let last: number | undefined;
      while (measuring || seen.length < 3) {
        const now = await gaugeMBps(agent, 'busy');
        if (now !== undefined && now !== last) seen.push((last = now));
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    })();
    const run = await asViewer(agent, ['--vm', 'busy', '--calc-time', '1s', '--sample-pages', '16384', '--json']);
    measuring = false;
    await watching;
    expect(run.code, run.stderr).toBe(0);
    const info = JSON.parse(run.stdout) as DirtyRateInfo;
    const truth = seen.reduce((sum, v) => sum + v, 0) / seen.length;
    console.log(
      `busy: estimate ${info.dirtyRateMBps.toFixed(2)} ± ${info.standardErrorMBps.toFixed(2)} MB/s ` +
        `(${info.pagesChanged}/${info.pagesSampled}, ${info.windowMs.toFixed(0)} ms); ` +
        `dirty log ${truth.toFixed(2)} MB/s (${seen.map((v) => v.toFixed(1)).join(', ')})`,
    );
    expect(info).toMatchObject({
      vm: 'busy',
      method: 'page-sampling',
      memoryBytes: spec.memoryBytes,
      pagesSampled: 4096, // 16384 per GiB of 256 MiB
    });
    expect(info.windowMs).toBeGreaterThan(950);
    expect(info.windowMs).toBeLessThan(1500);
    expect(Math.abs(info.startedAt - Date.now())).toBeLessThan(30_000);
    // 4 standard errors of the sample, plus 15% for the gauge's seconds not being exactly the
    // measurement's (a loaded machine runs the vCPU unevenly).
    expect(Math.abs(info.dirtyRateMBps - truth)).toBeLessThanOrEqual(4 * info.standardErrorMBps + 0.15 * truth);

    const idle = await asViewer(agent, ['--vm', 'idle', '--calc-time', '300ms']);
    expect(idle.code, idle.stderr).toBe(0);
    expect(idle.stdout).toMatch(
      /^idle: dirty rate 0\.00 MB\/s \(below [\d.]+ MB\/s at 95%: no sampled page changed\) over [\d.]+ ms\n {2}0 of 256 sampled pages changed; 64\.0 MiB of memory, page-sampling\n$/,
    );
    expect(await gaugeMBps(agent, 'idle')).toBe(0);
  });

  it('during a pre-copy migration of the VM: measured on the source, and the migration loses nothing', async () => {
    const spec = parseVmSpec({ memory: '32MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 6 });
    const [source, dest] = await pair.boot('vm', spec);
    let measured: DirtyRateInfo | undefined;
    // 32 MiB at 8 MB/s: about four seconds of copy, so the one-second measurement runs inside it.
    const report = await fleet.migrate(source, dest, { vm: 'vm', params: { maxBandwidthBps: 8e6 } }, async () => {
      await waitUntil(async () => (await fleet.vms(source))[0]?.state === 'migrating-out', { what: 'migrating out' });
      // 16384 per GiB: 512 of the 8192 pages sampled (the default would sample 256).
      measured = await fleet.ask(source, (client) =>
        client.request('query-dirty-rate', { vm: 'vm', samplePagesPerGiB: 16_384 }),
      );
    });
    expectCompleted(report);
    // The hot set (512 pages of 8192) is rewritten many times a second, so the whole of it is
    // dirtied in the window: 2 MiB per window, and never more, whatever the migration does. The
    // estimate is from a sample (32 hot pages expected in it), so it may exceed that by sampling
    // error: 4 of its standard errors. (A fixed 1.5× margin was about 2 standard errors with the
    // default 256-page sample, and CI's run drew 24 hot pages where 16 were expected.)
    expect(measured!.pagesSampled).toBe(512);
    expect(measured!.pagesChanged).toBeGreaterThan(0);
    const hotSetMBps = (2 * 1024 * 1024) / 1e6 / (measured!.windowMs / 1000);
    expect(measured!.dirtyRateMBps).toBeLessThanOrEqual(hotSetMBps + 4 * measured!.standardErrorMBps);
    const oracle = await fleet.oracle(dest, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('bad arguments are bad input (exit 2); an unknown VM is ERR_NOT_FOUND (exit 1)', async () => {
    const [agent] = await pair.agents();
    const [short, pages, missing] = await Promise.all([
      asViewer(agent, ['--vm', 'x', '--calc-time', '50ms']),
      asViewer(agent, ['--vm', 'x', '--sample-pages', '100']),
      asViewer(agent, ['--vm', 'nope']),
    ]);
    expect(short).toMatchObject({ code: 2, stdout: '' });
    expect(short.stderr).toBe(
      'livemig: ERR_INVALID_ARGUMENT: --calc-time: expected a duration from 100 ms to 60 s, got "50ms"\n',
    );
    expect(pages).toMatchObject({ code: 2, stdout: '' });
    expect(pages.stderr).toMatch(
      /^livemig: ERR_INVALID_ARGUMENT: --sample-pages: expected a whole number from 128 to 16384/,
    );
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toMatch(/^livemig: ERR_NOT_FOUND: no VM named "nope" here/);
  });
});
