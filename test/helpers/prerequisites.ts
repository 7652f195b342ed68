/**
 * Suites that need what not every machine has (root, network namespaces, tc, nftables,
 * arping, tmux). Outside CI such a suite skips and prints why. In CI as root it must run: CI installs
 * the tools (.ci/run), so a missing one there is a broken CI machine, and a suite that skipped
 * would let the build go green without running it — so there the suite fails, with the reason.
 *
 *   describeWhenAvailable('shaped links', labUnavailable(), () => { … });
 */
import { describe, it } from 'vitest';
import { succeeds } from '../../cli/lab/sh.ts';

/** CI=… set (and not "false"/"0") and running as root: nothing may skip. */
export function mustNotSkip(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.()): boolean {
  const ci = env.CI !== undefined && env.CI !== '' && !/^(false|0)$/i.test(env.CI);
  return ci && uid === 0;
}

/** Why iputils arping (the VM address announcements) is missing, or undefined. */
export function arpingUnavailable(): string | undefined {
  return succeeds('arping', '-V') ? undefined : 'iputils arping is not installed (apt-get install iputils-arping)';
}

/** Why tmux (a real terminal for the CLI's live output) is missing, or undefined. */
export function tmuxUnavailable(): string | undefined {
  return succeeds('tmux', '-V') ? undefined : 'tmux is not installed (apt-get install tmux)';
}

/**
 * `describe(name, body)` when `unavailable` is undefined. Otherwise: in CI as root, a suite of
 * one failing test that names the reason; elsewhere the suite is skipped and the reason printed.
 */
export function describeWhenAvailable(name: string, unavailable: string | undefined, body: () => void): void {
  if (unavailable === undefined) {
    describe(name, body);
  } else if (mustNotSkip()) {
    describe(name, () => {
      it('has what it needs to run (in CI as root nothing may skip)', () => {
        throw new Error(
          `${name}: ${unavailable}. CI=${process.env.CI} as root: this suite must run, not skip ` +
            `(.ci/run installs iproute2, nftables, iputils-arping, tmux and qemu-system-x86)`,
        );
      });
    });
  } else {
    process.stdout.write(`[skip] ${name}: ${unavailable}\n`);
    describe.skip(name, body);
  }
}
