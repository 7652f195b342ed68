import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { announceDelays, announceOffsets, ArpAnnouncer, DEFAULT_ANNOUNCE, resolveAnnounce } from '@livemig/shared/net';
import { waitUntil } from '../../../helpers/wait.ts';

/** A debug logger whose records land in `records`. */
function sink(): { logger: pino.Logger; records: { event?: string; round?: number }[] } {
  const records: { event?: string; round?: number }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { logger, records };
}

describe('announce schedule', () => {
  it("QEMU's defaults: 5 rounds, 50 ms then +100 ms each", () => {
    expect(DEFAULT_ANNOUNCE).toEqual({ initialMs: 50, stepMs: 100, maxMs: 550, rounds: 5 });
    expect(announceDelays()).toEqual([50, 150, 250, 350, 450]);
    expect(announceOffsets()).toEqual([50, 200, 450, 800, 1250]);
  });

  it('caps every delay at maxMs', () => {
    expect(announceDelays({ rounds: 8 })).toEqual([50, 150, 250, 350, 450, 550, 550, 550]);
    expect(announceDelays({ initialMs: 10, stepMs: 1000, maxMs: 20, rounds: 3 })).toEqual([10, 20, 20]);
  });

  it('takes partial settings over the defaults', () => {
    expect(resolveAnnounce({ rounds: 2 })).toEqual({ ...DEFAULT_ANNOUNCE, rounds: 2 });
    expect(announceDelays({ initialMs: 0, stepMs: 1, maxMs: 0, rounds: 3 })).toEqual([0, 0, 0]);
  });

  it('0 rounds is no schedule (the kernel announces alone)', () => {
    expect(announceDelays({ rounds: 0 })).toEqual([]);
    expect(announceOffsets({ rounds: 0 })).toEqual([]);
  });

  it.each([
    [{ initialMs: -1 }, /initialMs must be an integer from 0 to 100000/],
    [{ initialMs: 100_001, maxMs: 100_001 }, /initialMs/],
    [{ stepMs: 0 }, /stepMs must be an integer from 1 to 10000/],
    [{ stepMs: 10_001 }, /stepMs/],
    [{ maxMs: 100_001 }, /maxMs must be an integer from 0 to 100000/],
    [{ rounds: 1001 }, /rounds must be an integer from 0 to 1000/],
    [{ rounds: 2.5 }, /rounds must be an integer/],
    [{ initialMs: Number.NaN }, /initialMs .* got NaN/],
    [{ initialMs: 600, maxMs: 550 }, /maxMs \(550\) is below initialMs \(600\)/],
  ])('rejects %j', (settings, message) => {
    expect(() => announceDelays(settings)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => resolveAnnounce(settings)).toThrow(message);
  });
});

describe('ArpAnnouncer', () => {
  it('sends one round per scheduled delay (or says once that arping is missing)', async () => {
    const { logger, records } = sink();
    const announcer = new ArpAnnouncer({
      link: 'lo',
      ip: '127.0.0.1',
      announce: { initialMs: 0, stepMs: 1, maxMs: 5, rounds: 3 },
      logger,
    });
    announcer.start();
    try {
      const rounds = await waitUntil(
        () => {
          if (records.some((r) => r.event === 'address.arping-missing')) return 'missing';
          const done = records.filter((r) => r.event === 'address.announce' || r.event === 'address.announce-failed');
          return done.length === 3 && done.map((r) => r.round).sort();
        },
        { what: 'three announce rounds', timeoutMs: 10_000 },
      );
      if (rounds === 'missing') {
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(records.filter((r) => r.event?.startsWith('address.'))).toEqual([
          expect.objectContaining({ event: 'address.arping-missing' }),
        ]);
      } else {
        expect(rounds).toEqual([1, 2, 3]);
      }
    } finally {
      announcer.stop();
    }
  });

  it('stop() cancels the rounds to come; start() again restarts the schedule', async () => {
    const { logger, records } = sink();
    const schedule = { initialMs: 30, rounds: 2 };
    const announcer = new ArpAnnouncer({ link: 'lo', ip: '127.0.0.1', announce: schedule, logger });
    // The window for "nothing was sent": at least 250 ms, and until an announcer on the same
    // schedule that was not stopped has gone through its rounds (a loaded machine delays both).
    const witness = sink();
    const control = new ArpAnnouncer({ link: 'lo', ip: '127.0.0.1', announce: schedule, logger: witness.logger });
    try {
      announcer.start();
      announcer.stop();
      announcer.start();
      announcer.stop();
      control.start();
      await Promise.all([
        new Promise((resolve) => setTimeout(resolve, 250)),
        waitUntil(
          () =>
            witness.records.some((r) => r.event === 'address.arping-missing') ||
            witness.records.filter((r) => r.event === 'address.announce' || r.event === 'address.announce-failed')
              .length === 2,
          { what: 'the announcer that was not stopped to go through its rounds', timeoutMs: 10_000 },
        ),
      ]);
    } finally {
      control.stop();
    }
    expect(records).toEqual([]);
  });

  it('refuses a schedule outside the limits', () => {
    expect(() => new ArpAnnouncer({ link: 'lo', ip: '127.0.0.1', announce: { rounds: -1 } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});
