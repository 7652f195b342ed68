/**
 * `livemig dashboard` as a person sees it: two real secure agents on loopback, the dashboard as a
 * child process following the source with a viewer's certificate, its page in headless Chromium.
 * A 256 MiB VM of random memory migrates at 100 MB/s (about 2.7 s), long enough to watch:
 *
 *  - the page shows the migration in flight (its id, outgoing, pre-copy, a progress bar);
 *  - the bytes sent, read from the page twice, grow;
 *  - the page agrees with the agent: query-migrate is read, the page is waited on until it has
 *    caught up with that reading, then read, then query-migrate again. `transferred` only grows,
 *    and the page shows a value the agent reported at some moment, so it must lie between the
 *    two readings — a bound that holds however slow the machine, with no tolerance to tune;
 *  - once it ended, the page says completed with the report's total time, and charts the
 *    report's rounds;
 *  - the agent stopping shows "agent unreachable"; an agent back on the same address is
 *    followed again, the finished migration still shown;
 *  - nothing on the page failed (console errors, page errors, failed requests), it fetched
 *    nothing but its own origin, and SIGINT stops the dashboard with exit 0.
 *
 * Synchronisation is on what the page shows (waitForFunction with deadlines), never a sleep. A
 * screenshot of the finished migration is left in $LIVEMIG_ARTIFACTS (or <tmp>/livemig-artifacts).
 * Without Chromium the suite is skipped — except with CI set, where it fails (helpers/browser.ts).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { EvaluateFunc, Page } from 'puppeteer-core';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { formatDuration } from '@livemig/shared';
import type { MigrationInfo } from '@livemig/shared/control';
import { issueCertificate } from '@livemig/shared/security';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { artifactsDir, describeWithBrowser, withBrowser } from '../helpers/browser.ts';
import { useFleet } from '../helpers/fleet.ts';
import { spawnCli, stopAll } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
// The dashboard only reads: a viewer's certificate is all it needs.
beforeAll(() => issueCertificate(fleet.pkiDir, { name: 'victor', role: 'viewer' }));
afterEach(stopAll);

/** 256 MiB of random pages (no zero pages to skip) with a small busy set: ~2.7 s at 100 MB/s. */
const spec = parseVmSpec({ memory: '256MiB', init: 'random', workload: 'hotset:wss=4MiB,rate=2000', seed: 16 });
const MAX_BANDWIDTH = 100e6;

/** The page's DOM as these checks use it (the project compiles without lib.dom; the functions run in the page). */
declare const document: {
  getElementById(id: string): PageNode | null;
  querySelector(selector: string): PageNode | null;
  body: { innerText: string };
};
interface PageNode {
  getAttribute(name: string): string | null;
  querySelector(selector: string): PageNode | null;
  textContent: string | null;
}

/** Wait until `fn(...args)` is true in the page; on timeout, say what was awaited and what the page showed. */
async function pageWait<A extends unknown[]>(
  page: Page,
  wait: { what: string; timeoutMs?: number },
  fn: EvaluateFunc<A>,
  ...args: A
): Promise<void> {
  const { what, timeoutMs = 20_000 } = wait;
  try {
    await page.waitForFunction(fn, { timeout: timeoutMs, polling: 'mutation' }, ...args);
  } catch (error) {
    const shown = await page.evaluate(() => document.body.innerText).catch(() => '(page gone)');
    throw new Error(`timed out waiting until ${what}: ${(error as Error).message}\n--- the page showed:\n${shown}`, {
      cause: error,
    });
  }
}

/** The number a figure of migration `id` carries (data-value), NaN when absent or unknown. */
function figure(page: Page, id: string, key: string): Promise<number> {
  return page.$eval(`[data-migration-id="${id}"] [data-field="${key}"]`, (node) =>
    Number(node.getAttribute('data-value') || 'NaN'),
  );
}

describeWithBrowser('livemig dashboard in a browser', () => {
  it('follows a migration live, agrees with query-migrate, shows the report, survives the agent restarting', async () => {
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const dashboard = spawnCli([
      'dashboard',
      '--control',
      source.control,
      '--listen',
      '127.0.0.1:0',
      '--pki',
      fleet.pkiDir,
      '--name',
      'victor',
    ]);
    const url = await waitUntil(
      () =>
        /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(dashboard.err())?.[1] ?? dashboard.child.exitCode !== null,
      { what: 'the dashboard listening' },
    );
    expect(typeof url, dashboard.err()).toBe('string');
    const origin = new URL(url as string).origin;

    await withBrowser(async (browser) => {
      const page = await browser.newPage();
      const problems: string[] = [];
      const elsewhere: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
      page.on('request', (r) => {
        if (!r.url().startsWith(`${origin}/`) && !r.url().startsWith('data:')) elsewhere.push(r.url());
      });
      await page.setViewport({ width: 1200, height: 900 });
      const response = await page.goto(url as string, { waitUntil: 'load', timeout: 30_000 });
      expect(response?.status()).toBe(200);
      await pageWait(
        page,
        { what: 'the page says the agent is connected' },
        () => document.getElementById('agent')?.getAttribute('data-state') === 'connected',
      );

      const client = await fleet.connect(source, 'operator');
      try {
        const migrationId = await fleet.start(client, dest, { vm: 'vm', params: { maxBandwidthBps: MAX_BANDWIDTH } });
        const reported = followMigration(client, migrationId, { progress: false });
        reported.catch(() => {}); // awaited below; a failure before then must not go unhandled

        // In flight: its section, outgoing pre-copy, a progress bar with a share.
        await pageWait(
          page,
          { what: 'the migration shows in flight with its figures' },
          (id: string) => {
            const section = document.querySelector(`[data-migration-id="${id}"]`);
            const sent = section?.querySelector('[data-field="transferred"]')?.getAttribute('data-value');
            // Past setup: its Hello and Setup frames count as sent too, so wait for round 0's first MiB.
            return section?.getAttribute('data-ended') === 'false' && Number(sent) > 1048576;
          },
          migrationId,
        );
        const headline = await page.$eval(`[data-migration-id="${migrationId}"] h2`, (h) => h.textContent ?? '');
        expect(headline).toMatch(/VM vm — outgoing pre-copy · (precopy|stopcopy)/);
        const share = await figure(page, migrationId, 'progress');
        expect(share).toBeGreaterThanOrEqual(0);
        expect(share).toBeLessThanOrEqual(1);

        // The bytes sent grow on the page.
        const sent = `[data-migration-id="${migrationId}"] [data-field="transferred"]`;
        const first = await figure(page, migrationId, 'transferred');
        await pageWait(
          page,
          { what: 'the bytes sent grow on the page' },
          (selector: string, was: number) => Number(document.querySelector(selector)?.getAttribute('data-value')) > was,
          sent,
          first,
        );
        const second = await figure(page, migrationId, 'transferred');
        expect(second).toBeGreaterThan(first);

        // The page agrees with query-migrate: between a reading before it and one after it.
        const ask = async (): Promise<number> =>
          ((await client.request('query-migrate', { migrationId })) as MigrationInfo).transferred;
        const before = await ask();
        // Within a few polls (250 ms each): a page that lags further is a failure, not a wait.
        await pageWait(
          page,
          { what: `the page catches up with query-migrate (${before} bytes sent)`, timeoutMs: 5000 },
          (selector: string, atLeast: number) =>
            Number(document.querySelector(selector)?.getAttribute('data-value')) >= atLeast,
          sent,
          before,
        );
        const shown = await figure(page, migrationId, 'transferred');
        const after = await ask();
        expect(shown).toBeGreaterThanOrEqual(before);
        expect(shown).toBeLessThanOrEqual(after);

        // Completed: the report's outcome and total time, and its rounds in the chart.
        const report = await reported;
        expectCompleted(report);
        await pageWait(
          page,
          { what: 'the page shows the report' },
          (id: string) =>
            document
              .querySelector(`[data-migration-id="${id}"] [data-field="report"]`)
              ?.getAttribute('data-outcome') === 'completed',
          migrationId,
        );
        const verdict = await page.$eval(`[data-migration-id="${migrationId}"] [data-field="report"]`, (node) => ({
          text: node.textContent ?? '',
          totalMs: Number(node.getAttribute('data-value')),
        }));
        expect(verdict.totalMs).toBe(report.times.totalMs);
        expect(verdict.text).toContain(`completed in ${formatDuration(report.times.totalMs)}`);
        expect(await figure(page, migrationId, 'total-time')).toBe(report.times.totalMs);
        const bars = await page.$$eval(`[data-migration-id="${migrationId}"] svg rect.exact`, (rects) =>
          rects.map((r) => Number(r.getAttribute('data-bytes'))),
        );
        expect(bars).toEqual(report.rounds.map((r) => r.bytes));
        const artifacts = artifactsDir();
        await mkdir(artifacts, { recursive: true });
        await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
      } finally {
        client.close();
      }

      // The agent goes away: the page says so. Back on the same address: followed again.
      const control = new URL(source.control);
      await source.stop();
      await pageWait(page, { what: 'the page says the agent is unreachable' }, () => {
        const agent = document.getElementById('agent');
        return agent?.getAttribute('data-state') === 'unreachable' && /agent unreachable/.test(agent.textContent ?? '');
      });
      await fleet.agent({ address: source.name, args: ['--control', `${source.name}:${control.port}`] });
      await pageWait(
        page,
        { what: 'the page follows the agent again' },
        () => document.getElementById('agent')?.getAttribute('data-state') === 'connected',
      );
      expect(await page.$$eval('[data-outcome="completed"][data-migration-id]', (s) => s.length)).toBe(1);

      expect(problems).toEqual([]);
      expect(elsewhere).toEqual([]);
      await page.close();
    });

    dashboard.child.kill('SIGINT');
    expect(await dashboard.exited, dashboard.err()).toBe(0);
    expect(dashboard.err()).toMatch(/agent unreachable: ERR_CONNECTION/);
    expect(dashboard.err()).toMatch(/dashboard: SIGINT, stopping/);
  });
});
