import { describe, expect, it } from 'vitest';
import { CONSOLE_EVERY_TICKS, DeviceBus } from '../../../../shared/src/vm/devices.ts';
import { R_ACC, R_STEP_LO, RegisterFile } from '../../../../shared/src/vm/registers.ts';

describe('DeviceBus', () => {
  it('ticks the timer, latches the accumulator and prints to the console', () => {
    const devices = new DeviceBus();
    const regs = new RegisterFile().words;
    regs[R_ACC] = 0xdeadbeef;
    for (let i = 1; i <= CONSOLE_EVERY_TICKS * 20; i++) {
      regs[R_STEP_LO] = i * 4096;
      devices.tick(regs);
    }
    const state = devices.exportState();
    expect(state.timer.ticks).toBe(CONSOLE_EVERY_TICKS * 20);
    expect(state.timer.latch).toBe((0xdeadbeef ^ (CONSOLE_EVERY_TICKS * 20 * 4096)) >>> 0);
    expect(state.console.bytesWritten).toBeGreaterThan(256);
    expect(state.console.tail.length).toBe(256);
    expect(
      state.console.tail.endsWith(
        `tick ${CONSOLE_EVERY_TICKS * 20} acc ${state.timer.latch.toString(16).padStart(8, '0')}\n`,
      ),
    ).toBe(true);
  });

  it('imports what it exports, and then carries on identically', () => {
    const a = new DeviceBus();
    const regs = new RegisterFile().words;
    for (let i = 0; i < 40; i++) a.tick(regs);
    const b = new DeviceBus();
    b.importState(JSON.parse(JSON.stringify(a.exportState())));
    expect(b.exportState()).toEqual(a.exportState());
    for (let i = 0; i < 40; i++) {
      a.tick(regs);
      b.tick(regs);
    }
    expect(b.exportState()).toEqual(a.exportState());
  });

  it.each([
    ['null', null],
    ['wrong version', { version: 9, timer: { ticks: 0, latch: 0 }, console: { bytesWritten: 0, tail: '' } }],
    ['negative ticks', { version: 1, timer: { ticks: -1, latch: 0 }, console: { bytesWritten: 0, tail: '' } }],
    [
      'tail longer than written',
      { version: 1, timer: { ticks: 0, latch: 0 }, console: { bytesWritten: 1, tail: 'ab' } },
    ],
    ['binary tail', { version: 1, timer: { ticks: 0, latch: 0 }, console: { bytesWritten: 1, tail: '\u0001' } }],
  ])('rejects %s with ERR_STATE_MISMATCH', (_name, state) => {
    expect(() => new DeviceBus().importState(state)).toThrow(expect.objectContaining({ code: 'ERR_STATE_MISMATCH' }));
  });
});
