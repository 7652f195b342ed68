/**
 * The live progress of `livemig migrate` as a person sees it: in a real terminal (tmux, 80 × 24),
 * against real secure agents. A hybrid migration slowed by a bandwidth cap is watched in round 0
 * — the round, the share of memory sent, elapsed and a measured ETA — then switched to post-copy
 * mid-round and watched again: the share of pages present at the destination, not "100 % of this
 * round". No line of the screen is wider than the terminal, and the progress line is not cut by
 * it: it was composed for 80 columns. The tmux server runs on a socket of this test's own, in a
 * temporary directory, and is killed afterwards — its session, then the server, then the
 * directory — whatever happened.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { PAGE_SIZE, parseVmSpec } from '@livemig/shared/vm';
import { CLI_PATH } from '../../cli/agent-process.ts';
import { useFleet } from '../helpers/fleet.ts';
import { describeWhenAvailable, tmuxUnavailable } from '../helpers/prerequisites.ts';
import { stopAll } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const run = promisify(execFile);
const fleet = useFleet();
const COLUMNS = 80;

/** A tmux server on a socket of its own (in a temporary directory) with one session, `COLUMNS` × 24. */
class Terminal {
  readonly #dir = mkdtempSync(join(tmpdir(), 'livemig-tmux-'));
  readonly #socket = join(this.#dir, 'socket');
  readonly session = `live-progress-${randomUUID().slice(0, 8)}`;

  async start(command: string): Promise<void> {
    await this.#tmux('new-session', '-d', '-s', this.session, '-x', String(COLUMNS), '-y', '24', command);
  }

  /** What the screen shows, one string per row, wrapped rows joined (-J): a row too wide shows up as one. */
  async screen(): Promise<string[]> {
    const { stdout } = await this.#tmux('capture-pane', '-p', '-J', '-t', this.session);
    return stdout.split('\n').filter((line) => line.trim() !== '');
  }

  /** Kill the session — and with it this socket's server, whose only session it is — and remove the socket. */
  async kill(): Promise<void> {
    await this.#tmux('kill-session', '-t', this.session).catch(() => {});
    await this.#tmux('kill-server').catch(() => {});
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #tmux(...args: string[]): Promise<{ stdout: string }> {
    // TMUX set (the tests run inside someone's tmux) must not lead us to their server.
    const env = { ...process.env, TMUX: '' };
    return run('tmux', ['-S', this.#socket, ...args], { env, timeout: 10_000 });
  }
}

const quote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;

const terminals: Terminal[] = [];
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((terminal) => terminal.kill()));
  await stopAll();
});

/** Every row fits the terminal (code points: the bar's █ and ░ are one column each). */
function expectFits(screen: string[]): void {
  for (const row of screen) expect([...row].length, `row wider than ${COLUMNS}: ${row}`).toBeLessThanOrEqual(COLUMNS);
}

describeWhenAvailable('livemig migrate in a real terminal', tmuxUnavailable(), () => {
  it('shows round 0 (share of memory, elapsed, ETA), then post-copy as pages present, within 80 columns', async () => {
    const spec = parseVmSpec({ memory: '64MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=2000', seed: 3 });
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const migrate = [
      process.execPath,
      CLI_PATH,
      'migrate',
      ...['--control', source.control, '--dest-control', dest.control, '--vm', 'vm', '--to', dest.listen],
      // 64 MiB at 10 MB/s: round 0 alone would take ~6.7 s, the first half of it (with most of
      // memory still to send) to read the screen and switch; post-copy pushes what is left of it,
      // seconds more to read the screen again (96 MiB took 10 s of the suite's budget).
      ...['--mode', 'hybrid', '--max-bandwidth', '10MB/s'],
      ...['--pki', fleet.pkiDir, '--name', 'operator'],
    ];
    const terminal = new Terminal();
    terminals.push(terminal);
    // The report stays on the screen after the command, with its exit status, until the session is killed.
    await terminal.start(`${migrate.map(quote).join(' ')}; echo "[livemig exited $?]"; exec sleep 600`);
    const line = async (pattern: RegExp): Promise<{ screen: string[]; line: string } | undefined> => {
      const screen = await terminal.screen();
      const found = screen.find((row) => pattern.test(row));
      return found === undefined ? undefined : { screen, line: found };
    };

    // Round 0, once the round has moved enough for its rate to be measured: the ETA is a time.
    const round0 = await waitUntil(() => line(/^precopy round 0 .*ETA \d/), {
      what: 'round 0 with a measured ETA on the screen',
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    expect(round0.line).toMatch(/^precopy round 0 \[[█░]{10,}\] \d+% of memory/);
    expect(round0.line).toMatch(/ · elapsed \d[\d.]* (ms|s)( · |$)/);
    expect(round0.line).toMatch(/ · ETA \d[\d.]* (ms|s|m \d\d s)( · |$)/);
    // Composed for the terminal, not cut by it: it leaves the last column free.
    expect([...round0.line].length).toBeLessThan(COLUMNS);
    expectFits(round0.screen);
    // The figures behind it. The source: most of memory still to send. The destination: what arrived.
    const sending = await fleet.ask(source, (client) => client.request('query-migrate', {}));
    expect(sending).toMatchObject({ direction: 'outgoing', status: 'precopy', pass: 0 });
    expect(sending?.direction === 'outgoing' && sending.remaining).toBeGreaterThan(0.5 * spec.memoryBytes);
    const arriving = await fleet.ask(dest, (client) => client.request('query-migrate', {}));
    expect(arriving).toMatchObject({ direction: 'incoming', vm: 'vm', mode: 'hybrid', status: 'receiving' });
    expect(arriving?.direction === 'incoming' && arriving.pagesReceived).toBeGreaterThan(0);
    expect(arriving?.direction === 'incoming' && arriving.postcopy).toBeNull();

    // Switch mid-round: most of memory is still on the source, and post-copy pushes it.
    await fleet.ask(source, (client) => client.request('migrate-start-postcopy', {}), 'operator');
    const postcopy = await waitUntil(() => line(/^postcopy .*\d+% present.*ETA \d/), {
      what: 'post-copy with pages present and a measured ETA on the screen',
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    expect(postcopy.line).toMatch(/^postcopy \[[█░]{10,}\] \d+% present/);
    expect(postcopy.line).not.toMatch(/of memory|100%/);
    expect(postcopy.line).toMatch(/ · elapsed \d/);
    expect([...postcopy.line].length).toBeLessThan(COLUMNS);
    expectFits(postcopy.screen);
    const pages = spec.memoryBytes / PAGE_SIZE;
    const paging = await fleet.ask(dest, (client) => client.request('query-migrate', {}));
    expect(paging?.direction === 'incoming' && paging.postcopy).toMatchObject({ pages });

    // It ends as it should: completed, the report on the screen, the bar gone.
    const done = await waitUntil(() => line(/^\[livemig exited \d+\]$/), {
      what: 'livemig migrate to exit',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    expect(done.line, done.screen.join('\n')).toBe('[livemig exited 0]');
    expect(done.screen.filter((row) => /\[[█░]+\]/.test(row))).toEqual([]);
    const [outgoing] = await fleet.ask(source, async (client) => {
      const info = await client.request('query-migrate', {});
      return [
        info?.direction === 'outgoing' ? await client.request('query-report', { migrationId: info.migrationId }) : null,
      ];
    });
    expect(outgoing).not.toBeNull();
    expectCompleted(outgoing!);
    expect(outgoing!.switchover?.reason).toBe('postcopy');
    // The destination keeps the final figures of what arrived: every page present, every fault served.
    const arrived = await fleet.ask(dest, (client) => client.request('query-migrate', {}));
    expect(arrived).toMatchObject({ direction: 'incoming', status: 'completed' });
    const final = arrived?.direction === 'incoming' ? arrived.postcopy : null;
    expect(final).toMatchObject({ pages, present: pages });
    expect(final?.faultsServed).toBe(final?.faults);
  });
});
