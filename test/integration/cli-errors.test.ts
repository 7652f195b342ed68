/**
 * The CLI's error path end to end, through the real CLI as a child process (node bin/livemig.mjs):
 * what a script sees — exactly one line `livemig: ERR_CODE: message` on stderr, exit status 2 for
 * bad input and 1 for a failed operation, never a stack trace — and --version. The walk over
 * every subcommand and option is test/unit/cli/usage-errors.test.ts (in-process, fast).
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, stopAll } from '../helpers/processes.ts';

afterEach(stopAll);

const ONE_ERROR_LINE = /^livemig: ERR_[A-Z_]+: [^\n]+\n$/;

describe('livemig: one error path, as a script sees it', () => {
  it('bad input: one coded line, exit 2; a failed operation: one coded line, exit 1; --version', async () => {
    const [memory, mode, unknown, control, unreachable, version] = await Promise.all([
      runCli(['run-vm', '--memory', '1XB']),
      runCli(['migrate', '--mode', 'teleport']),
      runCli(['status', '--contrl', 'ws://127.0.0.1:7171']),
      runCli(['status', '--control', 'ws://[bad']),
      // A host that does not resolve is a failed connection (--wait rides it out), not a crash.
      runCli(['status', '--control', 'ws://nonexistent.invalid:7171']),
      runCli(['--version']),
    ]);
    for (const bad of [memory, mode, unknown, control]) {
      expect(bad.stderr).toMatch(ONE_ERROR_LINE);
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stdout).toBe('');
    }
    expect(memory.stderr).toMatch(/^livemig: ERR_INVALID_SIZE: --memory: cannot parse size "1XB"/);
    expect(mode.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --mode: expected one of precopy, postcopy, hybrid/);
    expect(unknown.stderr).toMatch(
      /^livemig: ERR_INVALID_ARGUMENT: unknown option '--contrl' \(Did you mean --control\?\)/,
    );
    expect(control.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --control: bad control URL "ws:\/\/\[bad"/);

    expect(unreachable.stderr).toMatch(ONE_ERROR_LINE);
    expect(unreachable.stderr).toMatch(
      /^livemig: ERR_CONNECTION: cannot reach agent at ws:\/\/nonexistent\.invalid:7171/,
    );
    expect(unreachable.code).toBe(1);

    const { version: expected } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(version).toEqual({ code: 0, stdout: `${expected}\n`, stderr: '' });
  });
});
