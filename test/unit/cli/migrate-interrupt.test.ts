/**
 * Ctrl-C on `livemig migrate` (cli/migrate-interrupt.ts), on a stand-in control client and fake
 * timers: the first press cancels after the grace second, a second press within it detaches
 * without cancelling, a press before the migration has an id cancels once it has one, and a
 * refusal (past the point of no return) is said and leaves the command following.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MigrationError } from '@livemig/shared';
import type { ControlClient } from '@livemig/shared/control';
import { CANCEL_GRACE_MS, followHints, MigrateInterrupt } from '../../../cli/migrate-interrupt.ts';

const ID = '0dc5fb2e-7ccd-423f-9e9a-0594f2519cca';

/** A control client whose migrate-cancel answers with `answer`. */
function client(answer: () => Promise<unknown>): { client: ControlClient; request: ReturnType<typeof vi.fn> } {
  const request = vi.fn((_command: string, _args: unknown) => answer());
  return { client: { request } as unknown as ControlClient, request };
}

let lines: string[];
let interrupt: MigrateInterrupt;
beforeEach(() => {
  vi.useFakeTimers();
  lines = [];
  interrupt = new MigrateInterrupt({ say: (line) => lines.push(line) });
  interrupt.listen();
});
afterEach(() => {
  interrupt.close();
  vi.useRealTimers();
});

const press = (): boolean => process.emit('SIGINT');

describe('Ctrl-C on livemig migrate', () => {
  it('once: says it will cancel, and after the grace second asks the agent to', async () => {
    const { client: c, request } = client(() => Promise.resolve({ cancelled: true }));
    interrupt.follow(c, ID);
    press();
    expect(lines).toEqual([`livemig: cancelling migration ${ID} in 1 s — Ctrl-C again to detach instead (it goes on)`]);
    await vi.advanceTimersByTimeAsync(CANCEL_GRACE_MS - 1);
    expect(request).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(request).toHaveBeenCalledWith('migrate-cancel', { migrationId: ID });
    expect(interrupt.cancelState).toBe('accepted');
    expect(lines[1]).toBe(`livemig: cancelling migration ${ID} (Ctrl-C again to stop waiting)`);
    expect(interrupt.detached).toBe(false);
  });

  it('twice within the grace second: detaches, and nothing is cancelled', async () => {
    const { client: c, request } = client(() => Promise.resolve({ cancelled: true }));
    interrupt.follow(c, ID);
    press();
    press();
    expect(interrupt.detached).toBe(true);
    expect(interrupt.signal.reason).toMatchObject({ code: 'ERR_CANCELLED' });
    await vi.advanceTimersByTimeAsync(CANCEL_GRACE_MS * 2);
    expect(request).not.toHaveBeenCalled();
    expect(interrupt.cancelState).toBe('not asked');
  });

  it('a press before the migration has an id cancels it once it has one', async () => {
    press();
    expect(lines[0]).toMatch(/^livemig: cancelling the migration in 1 s/);
    await vi.advanceTimersByTimeAsync(CANCEL_GRACE_MS);
    const { client: c, request } = client(() => Promise.resolve({ cancelled: true }));
    interrupt.follow(c, ID);
    await vi.advanceTimersByTimeAsync(0);
    expect(request).toHaveBeenCalledWith('migrate-cancel', { migrationId: ID });
  });

  it('past the point of no return: the refusal is said with its code, and a second press detaches', async () => {
    const refusal = new MigrationError('ERR_VM_STATE', 'cannot cancel: the migration is past the point of no return');
    const { client: c } = client(() => Promise.reject(refusal));
    interrupt.follow(c, ID);
    press();
    await vi.advanceTimersByTimeAsync(CANCEL_GRACE_MS);
    expect(interrupt.cancelState).toBe('refused');
    expect(lines[1]).toBe(
      'livemig: ERR_VM_STATE: cannot cancel: the migration is past the point of no return; ' +
        'following it to the end (Ctrl-C again to detach)',
    );
    press();
    expect(interrupt.detached).toBe(true);
  });

  it('once closed, Ctrl-C is the process default again and a pending cancel is dropped', async () => {
    const { client: c, request } = client(() => Promise.resolve({ cancelled: true }));
    interrupt.follow(c, ID);
    const listeners = process.listenerCount('SIGINT');
    press();
    interrupt.close();
    expect(process.listenerCount('SIGINT')).toBe(listeners - 1);
    await vi.advanceTimersByTimeAsync(CANCEL_GRACE_MS);
    expect(request).not.toHaveBeenCalled();
  });
});

describe('followHints', () => {
  it('gives the commands with the same agent and identity flags, quoting what needs it', () => {
    const hints = followHints(ID, { control: 'wss://10.0.0.1:7171', pki: '/tmp/my pki', name: 'oscar' });
    expect(hints).toBe(
      "  follow it:  livemig status --control wss://10.0.0.1:7171 --pki '/tmp/my pki' --name oscar" +
        "   (or: livemig events --control wss://10.0.0.1:7171 --pki '/tmp/my pki' --name oscar)\n" +
        `  cancel it:  livemig migrate-cancel --control wss://10.0.0.1:7171 --pki '/tmp/my pki' --name oscar --migration ${ID}\n`,
    );
  });
});
