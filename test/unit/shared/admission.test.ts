import { describe, expect, it } from 'vitest';
import {
  defaultGuestMemoryBudget,
  refuseGuestMemory,
  refuseOverLimit,
  resolveAvailabilityLimits,
  vmCharge,
  VM_OVERHEAD_BYTES,
  type GuestMemoryLedger,
} from '@livemig/shared';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe('admission: the guest-memory budget', () => {
  const ledger = (hostedBytes: number, reservedBytes: number): GuestMemoryLedger => ({
    budgetBytes: 512 * MiB,
    hostedBytes,
    reservedBytes,
  });

  // Every VM is charged its memory plus VM_OVERHEAD_BYTES (32 MiB): a VM of 480 MiB fills 512.
  it.each([
    // charged for hosted, for reserved; the new VM's memory; fits
    [0, 0, 480 * MiB, true],
    [0, 0, 480 * MiB + 4096, false],
    [256 * MiB, 0, 224 * MiB, true],
    [256 * MiB, 4096, 224 * MiB, false],
    [0, 256 * MiB, 225 * MiB, false],
    [100 * MiB, 100 * MiB, 280 * MiB, true],
    [0, 0, 8 * GiB, false],
    [480 * MiB, 0, 0, true],
    [481 * MiB, 0, 0, false],
  ])('charged %d hosted + %d reserved, a VM of %d: fits %s', (hosted, reserved, asked, fits) => {
    const refused = refuseGuestMemory(ledger(hosted, reserved), asked, 'incoming VM "x"');
    if (fits) expect(refused).toBeUndefined();
    else expect(refused).toMatchObject({ code: 'ERR_NO_MEMORY', message: expect.stringMatching(/incoming VM "x"/) });
  });

  it('says what was asked, what is taken and the budget', () => {
    const refused = refuseGuestMemory(ledger(256 * MiB, 64 * MiB), GiB, 'incoming VM "bomb"');
    expect(refused?.message).toBe(
      'incoming VM "bomb" needs 1.00 GiB of guest memory (+32.0 MiB per VM); 320.0 MiB of this agent\'s 512.0 MiB are taken (--max-guest-memory)',
    );
  });

  it('charges a VM its memory plus the overhead of its vCPU worker', () => {
    expect(VM_OVERHEAD_BYTES).toBe(32 * MiB);
    expect(vmCharge(4096)).toBe(4096 + 32 * MiB);
  });

  it('defaults to half of physical memory, in whole pages', () => {
    expect(defaultGuestMemoryBudget(16 * GiB)).toBe(8 * GiB);
    expect(defaultGuestMemoryBudget(3 * 4096 + 100)).toBe(4096);
  });
});

describe('admission: limits on things in flight', () => {
  it.each([
    [0, 1, true],
    [3, 4, true],
    [4, 4, false],
    [9, 4, false],
  ])('%d in flight, limit %d: another may start %s', (inFlight, limit, starts) => {
    const refused = refuseOverLimit(inFlight, limit, 'ERR_TOO_MANY_INCOMING', 'incoming migrations', '--max-incoming');
    if (starts) expect(refused).toBeUndefined();
    else
      expect(refused).toMatchObject({
        code: 'ERR_TOO_MANY_INCOMING',
        message: expect.stringMatching(/--max-incoming/),
      });
  });
});

describe('admission: resolving the limits', () => {
  it('fills in the defaults', () => {
    expect(resolveAvailabilityLimits({}, 8 * GiB)).toEqual({
      maxGuestMemoryBytes: 4 * GiB,
      maxIncoming: 4,
      maxUnauthenticated: 64,
      handshakeTimeoutMs: 5000,
      setupTimeoutMs: 10_000,
    });
  });

  it('keeps what is given', () => {
    const given = {
      maxGuestMemoryBytes: 256 * MiB,
      maxIncoming: 1,
      maxUnauthenticated: 2,
      handshakeTimeoutMs: 50,
      setupTimeoutMs: 1.5,
    };
    expect(resolveAvailabilityLimits(given, 8 * GiB)).toEqual(given);
  });

  it.each([
    ['maxGuestMemoryBytes', 0],
    ['maxGuestMemoryBytes', Infinity],
    ['maxIncoming', 0],
    ['maxIncoming', 1.5],
    ['maxUnauthenticated', -1],
    ['handshakeTimeoutMs', 0],
    ['setupTimeoutMs', Number.NaN],
  ])('refuses %s = %d (ERR_INVALID_ARGUMENT, naming it)', (name, value) => {
    expect(() => resolveAvailabilityLimits({ [name]: value }, 8 * GiB)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(name) }),
    );
  });
});
