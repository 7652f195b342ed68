/** ArmedCommand (armed-command.ts): forked now, run only when fired, once; disarm kills it. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ArmedCommand } from '../../../../shared/src/host/net/armed-command.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * The window for "it did not run": at least 100 ms, and until another command armed now and fired
 * at once has run — on a loaded machine, as long as an armed shell takes to start and run one.
 */
async function armedCommandRan(dir: string): Promise<void> {
  const witness = join(dir, 'witness');
  const [result] = await Promise.all([
    ArmedCommand.arm(['touch', witness]).fire(),
    new Promise((resolve) => setTimeout(resolve, 100)),
  ]);
  expect(result).toEqual({ code: 0, stderr: '' });
  expect(existsSync(witness)).toBe(true);
}

describe('ArmedCommand', () => {
  it('runs the command only when fired, with its arguments as given (no shell parsing)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'armed-'));
    dirs.push(dir);
    const file = join(dir, 'a file; with $(odd) "characters"');
    const armed = ArmedCommand.arm(['touch', file]);
    await armedCommandRan(dir);
    expect(existsSync(file)).toBe(false); // armed, not run
    expect(await armed.fire()).toEqual({ code: 0, stderr: '' });
    expect(existsSync(file)).toBe(true);
    expect(armed.fire()).toBeUndefined(); // once
  });

  it("reports the command's exit code and stderr", async () => {
    const armed = ArmedCommand.arm(['sh', '-c', 'echo no >&2; exit 3']);
    expect(await armed.fire()).toEqual({ code: 3, stderr: 'no\n' });
  });

  it('is waiting from arm() until it is fired or disarmed, and not once its shell is gone', async () => {
    const fired = ArmedCommand.arm(['true']);
    expect(fired.waiting).toBe(true);
    const result = fired.fire();
    expect(fired.waiting).toBe(false);
    expect(await result).toEqual({ code: 0, stderr: '' });
    const disarmed = ArmedCommand.arm(['true']);
    disarmed.disarm();
    expect(disarmed.waiting).toBe(false);
  });

  it('does nothing when fired after disarm()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'armed-'));
    dirs.push(dir);
    const file = join(dir, 'never');
    const armed = ArmedCommand.arm(['touch', file]);
    armed.disarm();
    expect(armed.fire()).toBeUndefined();
    await armedCommandRan(dir);
    expect(existsSync(file)).toBe(false);
  });
});
