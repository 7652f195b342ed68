/**
 * A headless Chromium for tests that look at a page the way a person would (the compare report,
 * the dashboard): Debian's /usr/bin/chromium (or LIVEMIG_CHROMIUM) driven by puppeteer-core.
 *
 *   describeWithBrowser('report in a browser', () => {
 *     it('renders', () => withBrowser(async (browser) => { const page = await browser.newPage(); … }));
 *   });
 *
 * Outside CI a machine without Chromium skips such a suite and prints why. With CI set it must
 * run — .ci/run installs chromium — so there a missing browser fails the suite, with the reason
 * (root is not needed, unlike the network-namespace suites of prerequisites.ts).
 */
import { accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { describe, it } from 'vitest';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/** The Chromium to run: $LIVEMIG_CHROMIUM, else Debian's. */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.LIVEMIG_CHROMIUM || DEFAULT_CHROMIUM;
}

/** Why Chromium cannot be run from `path`, or undefined when it can. */
export function chromiumUnavailable(path: string = chromiumPath()): string | undefined {
  try {
    accessSync(path, constants.X_OK);
    return undefined;
  } catch {
    return `no executable Chromium at ${path} (apt-get install chromium, or set LIVEMIG_CHROMIUM)`;
  }
}

/** CI=… set, and not "false" or "0". */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI !== undefined && env.CI !== '' && !/^(false|0)$/i.test(env.CI);
}

/** Where tests leave screenshots for a person to look at: $LIVEMIG_ARTIFACTS, else <tmp>/livemig-artifacts. */
export function artifactsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LIVEMIG_ARTIFACTS ?? join(tmpdir(), 'livemig-artifacts');
}

/**
 * `describe(name, body)` when Chromium is there. Otherwise: with CI set, a suite of one failing
 * test naming the reason; elsewhere the suite is skipped and the reason printed.
 */
export function describeWithBrowser(name: string, body: () => void): void {
  const unavailable = chromiumUnavailable();
  if (unavailable === undefined) {
    describe(name, body);
  } else if (inCi()) {
    describe(name, () => {
      it('has a browser to run (with CI set nothing may skip)', () => {
        throw new Error(
          `${name}: ${unavailable}. CI=${process.env.CI}: this suite must run, not skip (.ci/run installs chromium)`,
        );
      });
    });
  } else {
    process.stdout.write(`[skip] ${name}: ${unavailable}\n`);
    describe.skip(name, body);
  }
}

/** How long closing may take before the browser process is killed. */
const CLOSE_TIMEOUT_MS = 5000;

/**
 * Launch headless Chromium, run `fn` with it, and close it whatever `fn` did (threw, timed
 * out); a browser that does not close in time is killed, so no test leaves one running.
 */
export async function withBrowser<T>(fn: (browser: Browser) => Promise<T>): Promise<T> {
  const browser = await puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    // --disable-dev-shm-usage: containers' /dev/shm is often 64 MiB, too small for a renderer.
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: 30_000,
  });
  try {
    return await fn(browser);
  } finally {
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      browser.close().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), CLOSE_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!closed) browser.process()?.kill('SIGKILL');
  }
}
