/**
 * `livemig migrate --dry-run` and `--mode auto` from the command line, against real secure agent
 * processes (test/helpers/fleet.ts), with a 64 MiB VM writing an 8 MiB hot set:
 *
 *   - the dry run measures the VM's dirty rate now and prints every technique's prediction and
 *     --mode auto's choice per objective (one JSON object with --json, a table without) — and
 *     migrates nothing; without a link to predict with it is bad input (exit 2);
 *   - --mode auto --objective total-time|downtime migrates: the VM arrives intact, the report
 *     says what auto chose and why, its mode is what ran (precopy, else hybrid: auto starts as
 *     hybrid), and it has the dirty rate measured at the start; the text report shows both;
 *   - --objective without --mode auto, and --postcopy-after with it, are bad input (exit 2) and
 *     leave the VM where it runs.
 */
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import type { ControlClient, DirtyRateInfo } from '@livemig/shared/control';
import type { Choice, ModelInputs, Prediction } from '@livemig/shared/predict';
import { REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { stopAll } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';

const fleet = useFleet();
afterEach(stopAll);
// One pair for the tests that migrate nothing (the dry run; the refused flags): each boots VM `vm`
// on its source, destroyed after it, and each ends finding no migration ever started there. The
// auto migrations start agents of their own: a fresh pair, with no link history between them.
const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

const SPEC = parseVmSpec({ memory: '64MiB', init: 'random', workload: 'hotset:wss=8MiB,rate=20000', seed: 16 });
const TECHNIQUES = ['precopy', 'postcopy', 'hybrid'];

/** What `migrate --dry-run --json` prints (cli/dry-run.ts DryRun). */
interface DryRunJson {
  vm: string;
  dirtyRate: DirtyRateInfo;
  inputs: ModelInputs;
  predictions: Prediction[];
  choices: Choice[];
}

/** `livemig migrate --control <source> --vm vm <args>` as the operator. */
function migrateCli(source: FleetAgent, args: readonly string[]): ReturnType<typeof fleet.cli> {
  return fleet.cli(['migrate', '--control', source.control, '--vm', 'vm', ...args]);
}

/** Where VM `vm` is, and its state, on each agent. */
async function whereIs(...agents: FleetAgent[]): Promise<(string | undefined)[]> {
  return Promise.all(agents.map(async (a) => (await fleet.vms(a)).find((v) => v.name === 'vm')?.state));
}

describe('livemig migrate --dry-run', () => {
  it('measures the dirty rate, predicts every technique and auto per objective, and migrates nothing', async () => {
    const [source] = await pair.boot('vm', SPEC);
    const steps = (await fleet.vms(source))[0]!.steps;

    const json = await migrateCli(source, ['--dry-run', '--link-bandwidth', '1gbit', '--link-rtt', '1ms', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const lines = json.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const run = JSON.parse(lines[0]!) as DryRunJson;
    expect(run.vm).toBe('vm');
    expect(run.dirtyRate).toMatchObject({ memoryBytes: SPEC.memoryBytes, method: 'page-sampling' });
    expect(run.dirtyRate.dirtyRateMBps).toBeGreaterThan(0);
    expect(run.dirtyRate.pagesChanged).toBeGreaterThan(0);
    expect(run.dirtyRate.curve?.length, 'the curve (checkpoints) the model fits').toBeGreaterThan(0);
    expect(run.inputs.memoryBytes).toBe(SPEC.memoryBytes);
    expect(run.inputs.link).toEqual({ bandwidthBps: 125e6, rttMs: 1, source: '--link-bandwidth' });
    expect(run.inputs.dirty.rateBps).toBeGreaterThan(0);
    expect(run.predictions.map((p) => p.technique).sort()).toEqual([...TECHNIQUES].sort());
    for (const p of run.predictions) {
      expect(p.totalMs, p.technique).toBeGreaterThan(0);
      expect(p.wireBytes, p.technique).toBeGreaterThanOrEqual(SPEC.memoryBytes * 0.9);
    }
    expect(run.choices.map((c) => c.objective)).toEqual(['downtime', 'total-time', 'bytes']);
    for (const c of run.choices) {
      expect(TECHNIQUES, c.objective).toContain(c.technique);
      expect(c.why, c.objective).not.toBe('');
    }

    const text = await migrateCli(source, ['--dry-run', '--link-bandwidth', '1gbit', '--link-rtt', '1ms']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Dry run for VM vm (64.0 MiB): nothing was migrated.');
    expect(text.stdout).toContain('technique  rounds  switchover      total time   downtime   on the wire\n');
    for (const t of TECHNIQUES) expect(text.stdout).toMatch(new RegExp(`^${t} +\\d+ `, 'm'));
    expect(text.stdout).toContain('--mode auto would choose:\n');
    for (const o of ['downtime', 'total-time', 'bytes']) {
      expect(text.stdout).toMatch(new RegExp(`^ {2}--objective ${o} +(precopy|postcopy|hybrid): `, 'm'));
    }

    // No link to predict with: bad input.
    const noLink = await migrateCli(source, ['--dry-run', '--link-rtt', '1ms', '--json']);
    expect(noLink).toMatchObject({ code: 2, stdout: '' });
    expect(noLink.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --dry-run needs the link: give --link-bandwidth/);

    // Nothing migrated: the VM runs on where it was, and the agent never started a migration.
    const [vm] = await fleet.vms(source);
    expect(vm).toMatchObject({ name: 'vm', state: 'running' });
    expect(vm!.steps).toBeGreaterThan(steps);
    expect(await fleet.ask(source, (client) => client.request('query-migrate', {}))).toBeNull();
  });
});

describe('livemig migrate --mode auto', () => {
  /** The report of the last migration out of `agent`'s control API (what the text report printed). */
  async function lastReport(client: ControlClient): Promise<MigrationReport> {
    const info = await client.request('query-migrate', {});
    expect(info?.direction).toBe('outgoing');
    const report = await client.request('query-report', { migrationId: info!.migrationId });
    expect(report).not.toBeNull();
    return report!;
  }

  /** What every auto migration must show: it completed intact, and what auto chose is what ran. */
  function expectAuto(report: MigrationReport, objective: string): void {
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    expect(report.verify.sourceDigest).toBe(report.verify.destDigest);
    const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.auto).toMatchObject({ objective, maxDowntimeMs: null });
    expect(TECHNIQUES).toContain(report.auto!.chosen);
    expect(report.auto!.predictions.map((p) => p.technique).sort()).toEqual([...TECHNIQUES].sort());
    expect(report.auto!.why).not.toBe('');
    // auto starts as hybrid; a choice of pre-copy makes it pre-copy, post-copy switches at once.
    expect(report.mode).toBe(report.auto!.chosen === 'precopy' ? 'precopy' : 'hybrid');
    if (report.auto!.chosen === 'postcopy') expect(report.postcopy, 'switched to post-copy').toBeDefined();
    // fault-on-demand: a choice of pre-copy never asked for the fault channel, so neither side
    // started a fault thread (each side lists its own threads); post-copy's were served by them.
    const faultThreads = [report.threads?.source, report.threads?.dest].map(
      (side) => side?.threads.filter((t) => t.name.startsWith('fault')).length,
    );
    if (report.auto!.chosen === 'precopy') expect(faultThreads, 'fault threads (source, dest)').toEqual([0, 0]);
    if (report.postcopy) expect(report.postcopy.faultThread, 'the fault thread served the faults').toBe(true);
    expect(report.dirtyRate).toBeDefined();
    expect(report.dirtyRate!.measurement?.dirtyRateMBps ?? 0).toBeGreaterThan(0);
  }

  it('--objective total-time then downtime: each migrates intact, the report says what auto chose and ran', async () => {
    const [a, b] = await Promise.all([fleet.source('vm', SPEC), fleet.agent()]);
    /** `livemig migrate --mode auto --objective <objective>` from one agent to the other. */
    const auto = (from: FleetAgent, to: FleetAgent, objective: string, ...more: string[]) =>
      migrateCli(from, [
        '--to',
        to.listen!,
        '--dest-control',
        to.control,
        '--mode',
        'auto',
        '--objective',
        objective,
        ...more,
      ]);

    // a → b, total-time, the text report.
    const text = await auto(a, b, 'total-time');
    expect(text.code, text.stderr).toBe(0);
    const first = await fleet.ask(a, lastReport);
    expectAuto(first, 'total-time');
    expect(text.stdout).toMatch(/^ *start dirty rate +\d+\.\d ± \d+\.\d MB\/s over /m);
    expect(text.stdout).toMatch(
      new RegExp(`^ *auto +chose ${first.auto!.chosen} for total-time \\((round 0|end of round 0), `, 'm'),
    );
    expect(await whereIs(a, b)).toEqual(['migrated', 'running']);

    // b → a, downtime, --json: one report object.
    const json = await auto(b, a, 'downtime', '--json');
    expect(json.code, json.stderr).toBe(0);
    const second = JSON.parse(json.stdout) as MigrationReport;
    expectAuto(second, 'downtime');
    expect(await whereIs(a, b)).toEqual(['running', 'migrated']);

    // a → b again: a measured its link to b in the first migration, so auto decides from that
    // history and the first 125 ms of the dirty-rate measurement; for total time in round 0
    // (capped so that round 0 outlasts those 125 ms), nothing waiting for it.
    const again = await auto(a, b, 'total-time', '--max-bandwidth', '100MB/s', '--json');
    expect(again.code, again.stderr).toBe(0);
    const third = JSON.parse(again.stdout) as MigrationReport;
    expectAuto(third, 'total-time');
    expect(third.auto!.inputs.link.source).toMatch(/^the last migration to this destination \(/);
    expect(third.auto!.inputs.link.bandwidthBps).toBe(first.rounds[0]!.bandwidthBps);
    expect(third.auto!).toMatchObject({ decidedIn: 'round 0' });
    expect(third.auto!.decidedAtMs).toBeGreaterThan(third.times.setupMs);
    expect(await whereIs(a, b)).toEqual(['migrated', 'running']);

    // b → a again, for downtime: b knows its link to a (the second migration), and decides
    // before round 0, where a pure post-copy is still possible. With --auto-converge, which the
    // predictions of pre-copy and hybrid then include.
    const back = await auto(b, a, 'downtime', '--auto-converge', '--json');
    expect(back.code, back.stderr).toBe(0);
    const fourth = JSON.parse(back.stdout) as MigrationReport;
    expectAuto(fourth, 'downtime');
    expect(fourth.auto!.inputs.link.source).toMatch(/^the last migration to this destination \(/);
    expect(fourth.auto!).toMatchObject({ decidedIn: 'setup' });
    expect(fourth.auto!.inputs.options?.throttle).toMatchObject({ kind: 'auto-converge', initialPercent: 20 });
    const precopy = fourth.auto!.predictions.find((p) => p.technique === 'precopy');
    expect(precopy?.throttle, 'pre-copy predicted with the throttle').toBeDefined();
    if (fourth.auto!.chosen === 'postcopy') expect(fourth.rounds, 'a pure post-copy').toEqual([]);
    expect(await whereIs(a, b)).toEqual(['running', 'migrated']);
    const oracle = await fleet.oracle(a, 'vm', SPEC);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    console.log(
      `auto chose ${first.auto!.chosen} (mode ${first.mode}) for total-time, ` +
        `${second.auto!.chosen} (mode ${second.mode}) for downtime, ` +
        `then from the link history ${third.auto!.chosen} ${Math.round(third.auto!.decidedAtMs)} ms in ` +
        `(setup ${Math.round(third.times.setupMs)} ms) and ${fourth.auto!.chosen} at setup`,
    );
  });

  it('--objective without --mode auto, and --postcopy-after with it, are bad input; the VM stays', async () => {
    const [a, b] = await pair.boot('vm', SPEC);
    const to = ['--to', b.listen!, '--dest-control', b.control];
    const [objective, postcopyAfter] = await Promise.all([
      migrateCli(a, [...to, '--objective', 'downtime']),
      migrateCli(a, [...to, '--mode', 'auto', '--postcopy-after', '2']),
    ]);
    expect(objective, objective.stderr).toMatchObject({ code: 2, stdout: '' });
    expect(objective.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: .*--mode auto only/);
    expect(postcopyAfter, postcopyAfter.stderr).toMatchObject({ code: 2, stdout: '' });
    expect(postcopyAfter.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: postcopy-after is chosen by --mode auto/);
    expect(await whereIs(a, b)).toEqual(['running', undefined]);
    expect(await fleet.ask(a, (client) => client.request('query-migrate', {}))).toBeNull();
  });
});
