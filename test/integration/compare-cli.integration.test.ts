/**
 * `livemig compare --matrix FILE --out DIR` as a person runs it, a child process on loopback: a
 * tiny matrix (32 MiB VMs writing a hot set, and a probed kv service × pre-copy and
 * auto:downtime) runs every cell between real secure agents and writes results.json (every
 * cell measured, predicted, migrated and verified; one calibration), results.csv, summary.md and
 * report.html with its seven figures, with `[i/n]` progress on stderr. It runs as a user who is
 * not root (as root: as nobody, a real other user, not a faked uid), so the matrix's lab link is
 * skipped with the reason, said on stderr and kept in results.json. Ctrl-C finishes the cell in
 * progress, writes the report of what is done and exits 1. A technique with engine options
 * (precopy+compress+auto-converge) runs with their flags and is predicted with them.
 *
 * compare starts its agents itself (grandchildren of the test): each compare runs in a process
 * group of its own, killed whole after each test, so a failure leaves no agent behind.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Ajv } from 'ajv';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPORT_JSON_SCHEMA } from '@livemig/shared/report';
import { CLI_PATH, REPO_ROOT } from '../../cli/agent-process.ts';
import type { CellResult, CompareResults } from '../../cli/compare/results.ts';
import { stopAll, track } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * Every compare of this file: a process group each. The agents it starts have process groups
 * of their own (a terminal's Ctrl-C must reach compare alone), so cleanup kills compare's
 * children's groups first — found while compare still lives, before they are orphaned.
 */
const groups = new Set<number>();
afterEach(async () => {
  for (const group of groups) {
    for (const child of childrenOf(group)) killGroup(child);
    killGroup(group);
  }
  groups.clear();
  await stopAll();
});

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is gone: compare stopped its agents and exited.
  }
}

/** The pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(entry));
    } catch {
      // Exited meanwhile.
    }
  }
  return children;
}

/** As root, compare runs as this user (nobody): lab links need root, and most people run it without. */
const NOBODY = 65534;
const ROOT = process.getuid?.() === 0;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-compare-cli-'));
  if (ROOT) await chmod(dir, 0o711); // nobody may reach its own directory (and read the matrices) in it
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Compare {
  child: ChildProcessByStdio<null, Readable, Readable>;
  out(): string;
  err(): string;
  /** Its exit status (null: a signal ended it), once its output is all read. */
  exited: Promise<number | null>;
}

/** Who runs compare: another user (uid, gid) with its own state home, or null: this process's. */
type RunAs = { uid: number; gid: number; stateHome: string } | null;

/** A directory for a compare run not as root, owned by the user it runs as; and that user (null: this process's). */
async function notRoot(name: string): Promise<{ home: string; as: RunAs }> {
  const home = join(dir, name);
  await mkdir(home);
  if (!ROOT) return { home, as: null };
  await chown(home, NOBODY, NOBODY);
  return { home, as: { uid: NOBODY, gid: NOBODY, stateHome: join(home, 'state') } };
}

/** `livemig compare <args>` in a process group of its own, optionally as another user. */
function startCompare(args: readonly string[], as: RunAs = null): Compare {
  const child = spawn(process.execPath, [CLI_PATH, 'compare', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(as ? { uid: as.uid, gid: as.gid, env: { ...process.env, XDG_STATE_HOME: as.stateHome } } : {}),
  });
  track(child);
  groups.add(child.pid!);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return { child, out: () => out, err: () => err, exited };
}

/** Run compare to its end (killed past `timeoutMs`): its exit status and output. */
async function runCompare(
  args: readonly string[],
  as: RunAs = null,
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = startCompare(args, as);
  const timer = setTimeout(() => process.kill(-running.child.pid!, 'SIGKILL'), timeoutMs);
  const code = await running.exited;
  clearTimeout(timer);
  return { code, stdout: running.out(), stderr: running.err() };
}

async function readResults(out: string): Promise<CompareResults & { calibrations: unknown[] }> {
  return JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as CompareResults & { calibrations: unknown[] };
}

/** The seven figures' entries in report.html: each drawn (a <figure> with an inline SVG) or omitted with a reason. */
function figureEntries(html: string): { n: number; kind: 'figure' | 'omitted' }[] {
  const entries: { n: number; kind: 'figure' | 'omitted' }[] = [];
  for (const m of html.matchAll(
    /<figure id="fig-(\d+)">\n<div class="chart"><svg[\s>]|<p class="omitted" id="fig-(\d+)">/g,
  )) {
    entries.push(m[1] === undefined ? { n: Number(m[2]), kind: 'omitted' } : { n: Number(m[1]), kind: 'figure' });
  }
  return entries;
}

const MATRIX = `
vm: { memory: 32MiB, init: random }
techniques: [precopy, auto:downtime]
workloads:
  - name: hot
    workload: hotset:wss=4MiB,rate=20000
  - name: kv
    workload: kv
    probe: 2ms
links:
  - name: wan
    profile: wan
  - name: loopback
`;

/** The matrix's cells in run order: workload by workload, technique by technique. */
const CELLS = ['hot', 'kv'].flatMap((w) => ['precopy', 'auto:downtime'].map((t) => `loopback/${w}/${t}/1`));

describe('livemig compare', () => {
  it('not root: skips the lab link, runs every loopback cell (measured, predicted, migrated, verified), writes every file', async () => {
    const { home, as } = await notRoot('full');
    const matrix = join(home, 'matrix.yaml');
    const out = join(home, 'out');
    await writeFile(matrix, MATRIX);
    const run = await runCompare(['--matrix', matrix, '--out', out], as);
    expect(run.code, run.stderr).toBe(0);
    const reason = 'lab links need root (network namespaces, tc, nftables)';
    expect(run.stderr.startsWith(`  skipped link wan: ${reason}\n`), run.stderr).toBe(true);

    // Progress: [i/n] and the cell, in run order, each followed by its outcome.
    const progress = run.stderr.split('\n').filter((line) => /^\[\d+\/\d+\] /.test(line));
    expect(progress.map((line) => line.replace(/, about .* left$/, ''))).toEqual(
      CELLS.map((id, i) => `[${i + 1}/${CELLS.length}] ${id}`),
    );
    for (const id of CELLS) expect(run.stderr).toContain(`\n  ${id}: completed, `);

    const results = await readResults(out);
    expect(results).toMatchObject({ schema: 'livemig.compare/1', interrupted: false, host: { root: false } });
    expect(results.skippedLinks).toEqual([{ name: 'wan', reason }]);
    expect(results.matrix.links.map((l) => l.name)).toEqual(['wan', 'loopback']);
    expect(results.cells.map((c) => c.spec.id)).toEqual(CELLS);
    // One calibration: one link, one VM size.
    expect(results.calibrations).toHaveLength(1);
    expect(results.calibrations[0]).toMatchObject({ link: 'loopback', memoryBytes: 32 << 20 });

    const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
    for (const cell of results.cells) {
      const id = cell.spec.id;
      expect(cell.outcome, `${id}: ${JSON.stringify(cell.error)}`).toBe('completed');
      expect(cell.report?.verify.match, id).toBe(true);
      expect(validate(cell.report), `${id}: ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(cell.measured.dirtyRate?.curve?.length, `${id}: the dirty-rate curve`).toBeGreaterThan(0);
      expect(cell.measured.link?.bandwidthBps, id).toBeGreaterThan(0);
      expect(cell.predictions?.map((p) => p.technique).sort(), id).toEqual(['hybrid', 'postcopy', 'precopy']);
      expect(cell.predicted, id).not.toBeNull();
    }
    const hot = results.cells.find((c) => c.spec.id === 'loopback/hot/precopy/1')!;
    expect(hot.measured.dirtyRate!.dirtyRateMBps).toBeGreaterThan(0);

    // A fixed technique is predicted as itself; auto as what the agent chose, and says so.
    const fixed = results.cells.filter((c) => !c.spec.technique.startsWith('auto:'));
    for (const cell of fixed) expect(cell.predicted?.technique, cell.spec.id).toBe(cell.spec.technique);
    const auto = results.cells.filter((c) => c.spec.technique === 'auto:downtime');
    expect(auto).toHaveLength(2);
    for (const cell of auto) {
      const chosen = cell.report?.auto?.chosen;
      expect(cell.report?.auto?.objective, cell.spec.id).toBe('downtime');
      expect(['precopy', 'postcopy', 'hybrid'], cell.spec.id).toContain(chosen);
      expect(cell.predicted?.technique, cell.spec.id).toBe(chosen);
      expect(cell.choice?.objective, cell.spec.id).toBe('downtime');
    }

    // The kv cells: the client's every request, and what it saw in the report.
    const kv: CellResult[] = results.cells.filter((c) => c.spec.workload.name === 'kv');
    expect(kv).toHaveLength(2);
    for (const cell of kv) {
      expect(cell.probe?.intervalMs, cell.spec.id).toBe(2);
      expect(cell.probe?.samples.length, cell.spec.id).toBeGreaterThan(0);
      expect(cell.report?.network, cell.spec.id).not.toBeNull();
    }
    for (const cell of results.cells.filter((c) => c.spec.workload.name !== 'kv')) {
      expect(cell.probe, cell.spec.id).toBeUndefined();
    }

    // results.csv: a header and one row per cell; summary.md; report.html with seven figure entries.
    const csv = (await readFile(join(out, 'results.csv'), 'utf8')).trimEnd().split('\n');
    expect(csv[0]).toMatch(/^id,technique,workload,/);
    expect(csv.slice(1).map((row) => row.split(',')[0])).toEqual(CELLS);
    expect(await readFile(join(out, 'summary.md'), 'utf8')).toMatch(/^# livemig compare/);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(figureEntries(html).map((f) => f.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // stdout: the files written, each there (figures before report.html).
    const written = run.stdout.trimEnd().split('\n');
    expect(written.at(-1)).toBe(join(out, 'report.html'));
    expect(written).toEqual(expect.arrayContaining([join(out, 'results.csv'), join(out, 'summary.md')]));
    for (const file of written) expect((await stat(file)).size, file).toBeGreaterThan(0);
    const drawn = figureEntries(html).filter((f) => f.kind === 'figure');
    expect(written.filter((file) => file.includes('/figures/'))).toHaveLength(drawn.length);
  });

  it('a technique with options (issue 17): migrates with its flags, predicted with them from the pages sampled', async () => {
    const matrix = join(dir, 'options.yaml');
    const out = join(dir, 'options');
    const technique = 'precopy+compress+auto-converge';
    await writeFile(
      matrix,
      [
        'vm: { memory: 32MiB, init: realistic }',
        `techniques: [${technique}]`,
        'workloads:',
        '  - { name: hot, workload: "hotset:wss=4MiB,rate=5000" }',
        'links:',
        '  - { name: loopback }',
        '',
      ].join('\n'),
    );
    const run = await runCompare(['--matrix', matrix, '--out', out], null, 60_000);
    expect(run.code, run.stderr).toBe(0);
    const [cell] = (await readResults(out)).cells;
    expect(cell!.spec.technique).toBe(technique);
    expect(cell!.outcome, JSON.stringify(cell!.error)).toBe('completed');
    expect(cell!.report!.verify.match).toBe(true);
    // Run with --compress lz4 --auto-converge: the engine reports both.
    expect(cell!.report!.mode).toBe('precopy');
    expect(cell!.report!.throttle?.technique).toBe('auto-converge');
    expect(cell!.report!.encodings?.compression).toMatchObject({ mode: 'lz4' });
    expect(cell!.report!.encodings!.compression!.pages).toBeGreaterThan(0);
    // Predicted with them, from the VM's pages as sampled through the real codecs.
    expect(cell!.pages?.codecs.lz4?.ratio).toBeLessThan(0.9);
    expect(cell!.predicted).toMatchObject({
      technique: 'precopy',
      options: { compress: 'lz4', throttle: { kind: 'auto-converge', initialPercent: 20 } },
      compression: { codec: 'lz4' },
      throttle: { guestSpeed: expect.any(Number) },
    });
    expect(cell!.predictions?.map((p) => p.technique)).toEqual(['precopy', 'postcopy', 'hybrid', 'precopy']);
  });

  it('Ctrl-C: the cell in progress finishes, the report of what is done is written, exit 1', async () => {
    const matrix = join(dir, 'interrupt.yaml');
    const out = join(dir, 'interrupt');
    await writeFile(
      matrix,
      [
        'vm: { memory: 32MiB }',
        'techniques: [precopy, postcopy, hybrid]',
        'workloads:',
        '  - { name: idle, workload: idle }',
        'links:',
        '  - { name: loopback }',
        '',
      ].join('\n'),
    );
    const compare = startCompare(['--matrix', matrix, '--out', out]);
    // The first cell's outcome line: "  <id>: completed, …".
    const firstDone = (): boolean =>
      compare
        .err()
        .split('\n')
        .some((l) => l.startsWith('  loopback/idle/precopy/1: '));
    await waitUntil(() => firstDone() || compare.child.exitCode !== null, {
      what: 'the first cell finished',
      timeoutMs: 60_000,
    });
    expect(compare.child.exitCode, compare.err()).toBeNull();
    // SIGINT to compare's whole process group, as a terminal's Ctrl-C sends it: its agents are
    // in groups of their own (they take SIGINT as "shut down"), so the cell in progress finishes.
    process.kill(-compare.child.pid!, 'SIGINT');
    const sent = performance.now();
    const deadline = new Promise<'deadline'>((resolve) => setTimeout(() => resolve('deadline'), 30_000).unref());
    const code = await Promise.race([compare.exited, deadline]);
    const tookMs = performance.now() - sent;
    expect(code, compare.err()).toBe(1);
    expect(compare.err()).toContain('compare: stopping after the cell in progress');
    expect(compare.err()).toMatch(/^compare: \d cells \(0 not completed\), interrupted;/m);

    const results = await readResults(out);
    expect(results.interrupted).toBe(true);
    expect(results.cells.length).toBeGreaterThanOrEqual(1);
    expect(results.cells.length).toBeLessThan(3);
    // The cell in progress when Ctrl-C came was finished, not abandoned.
    for (const cell of results.cells)
      expect(cell.outcome, `${cell.spec.id}: ${JSON.stringify(cell.error)}`).toBe('completed');
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain('The run was interrupted');
    expect(figureEntries(html).map((f) => f.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    console.log(`compare exited ${Math.round(tookMs)} ms after SIGINT, with ${results.cells.length} cells`);
  });
});
