import { describe, expect, it } from 'vitest';
import { untilSettledOrAborted } from '../../../../shared/src/vm/wait.ts';

const never = new Promise<void>(() => undefined);

describe('untilSettledOrAborted', () => {
  it('resolves when the wait settles, fulfilled or rejected', async () => {
    await expect(untilSettledOrAborted(Promise.resolve('ok'))).resolves.toBeUndefined();
    await expect(untilSettledOrAborted(Promise.reject(new Error('x')), new AbortController().signal)).resolves.toBe(
      undefined,
    );
  });

  it('resolves on abort while the wait never settles, and at once if already aborted', async () => {
    const controller = new AbortController();
    const waiting = untilSettledOrAborted(never, controller.signal);
    controller.abort();
    await expect(waiting).resolves.toBeUndefined();
    await expect(untilSettledOrAborted(never, controller.signal)).resolves.toBeUndefined();
  });
});
