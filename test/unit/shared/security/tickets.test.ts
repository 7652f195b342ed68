/**
 * TicketStore on a fake clock: issue and every consume outcome (ok, unknown, expired, used,
 * mismatched VM or source), single use whatever the outcome, ttl validation, the bound on the
 * store (expired and spent tickets dropped first, refusal with ERR_TICKET_LIMIT) and expire().
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TICKET_TTL_MS,
  MAX_TICKET_TTL_MS,
  TicketStore,
  type TicketCheck,
} from '../../../../shared/src/security/tickets.ts';
import type { ErrorCode } from '../../../../shared/src/errors.ts';

function setup(maxTickets?: number): { store: TicketStore; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  const store = new TicketStore({ now: () => clock.t, ...(maxTickets === undefined ? {} : { maxTickets }) });
  return { store, clock };
}

const binding = { vm: 'web', from: 'agent-a' };

function codeOf(check: TicketCheck): string {
  return check.ok ? 'ok' : check.code;
}

function thrownCode(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: ErrorCode }).code;
  }
  return undefined;
}

describe('TicketStore.issue', () => {
  it('returns 256 random bits as base64url, bound to the VM and source, expiring after 60 s by default', () => {
    const { store, clock } = setup();
    const issued = store.issue(binding);
    expect(issued.ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(issued.ticket, 'base64url')).toHaveLength(32);
    expect(issued).toMatchObject({ vm: 'web', from: 'agent-a', expiresAt: clock.t + DEFAULT_TICKET_TTL_MS });
    expect(store.issue(binding).ticket).not.toBe(issued.ticket);
  });

  it.each([
    ['zero', 0],
    ['negative', -1],
    ['NaN', Number.NaN],
    ['infinite', Number.POSITIVE_INFINITY],
    ['over the maximum', MAX_TICKET_TTL_MS + 1],
    ['not a number', '60000'],
  ])('refuses a %s ttl with ERR_INVALID_ARGUMENT', (_name, ttlMs) => {
    const { store } = setup();
    expect(thrownCode(() => store.issue({ ...binding, ttlMs: ttlMs as number }))).toBe('ERR_INVALID_ARGUMENT');
    expect(store.size).toBe(0);
  });

  it.each([
    ['an empty vm', { vm: '', from: 'agent-a' }],
    ['an empty from', { vm: 'web', from: '' }],
    ['a missing from', { vm: 'web' }],
  ])('refuses %s with ERR_INVALID_ARGUMENT', (_name, bad) => {
    const { store } = setup();
    expect(thrownCode(() => store.issue(bad as typeof binding))).toBe('ERR_INVALID_ARGUMENT');
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses maxTickets %s', (maxTickets) => {
    expect(thrownCode(() => new TicketStore({ maxTickets }))).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('TicketStore.consume', () => {
  // Each row: what happens between issue({ vm: 'web', from: 'agent-a', ttlMs: 1000 }) and the
  // presentation, what is presented, and the outcome.
  const rows: {
    name: string;
    elapsedMs?: number;
    present?: (ticket: string) => string;
    as?: { vm: string; from: string };
    expected: string;
  }[] = [
    { name: 'the right ticket, VM and source in time', expected: 'ok' },
    { name: 'just before expiry', elapsedMs: 999, expected: 'ok' },
    { name: 'at expiry', elapsedMs: 1000, expected: 'ERR_TICKET_EXPIRED' },
    { name: 'long after expiry', elapsedMs: 3_600_000, expected: 'ERR_TICKET_EXPIRED' },
    { name: 'for another VM', as: { vm: 'db', from: 'agent-a' }, expected: 'ERR_TICKET_MISMATCH' },
    { name: 'from another source', as: { vm: 'web', from: 'agent-b' }, expected: 'ERR_TICKET_MISMATCH' },
    {
      name: 'a ticket never issued',
      present: () => Buffer.alloc(32, 7).toString('base64url'),
      expected: 'ERR_TICKET_UNKNOWN',
    },
    { name: 'a ticket one bit off', present: flipLastBit, expected: 'ERR_TICKET_UNKNOWN' },
    { name: 'an empty string', present: () => '', expected: 'ERR_TICKET_UNKNOWN' },
    { name: 'a short ticket', present: (t) => t.slice(0, 42), expected: 'ERR_TICKET_UNKNOWN' },
    { name: 'a long ticket', present: (t) => `${t}A`, expected: 'ERR_TICKET_UNKNOWN' },
    { name: 'the same bytes in standard padded base64', present: toBase64, expected: 'ERR_TICKET_UNKNOWN' },
    { name: 'not base64 at all', present: () => '!'.repeat(43), expected: 'ERR_TICKET_UNKNOWN' },
    { name: 'not a string', present: () => 42 as unknown as string, expected: 'ERR_TICKET_UNKNOWN' },
  ];

  it.each(rows)('$name → $expected', ({ elapsedMs = 0, present = (t) => t, as = binding, expected }) => {
    const { store, clock } = setup();
    const { ticket } = store.issue({ ...binding, ttlMs: 1000 });
    clock.t += elapsedMs;
    const check = store.consume(present(ticket), as);
    expect(codeOf(check)).toBe(expected);
    if (!check.ok) expect(check.reason.length).toBeGreaterThan(0);
  });

  it.each(rows)(
    'after "$name", the real ticket can never be consumed again',
    ({ elapsedMs = 0, present = (t) => t, as = binding, expected }) => {
      const { store, clock } = setup();
      const { ticket } = store.issue({ ...binding, ttlMs: 1000 });
      clock.t += elapsedMs;
      store.consume(present(ticket), as);
      // A probe with a wrong ticket spends nothing; a presentation of the real one spends it.
      const spent = expected !== 'ERR_TICKET_UNKNOWN';
      const again = store.consume(ticket, binding);
      if (spent) expect(codeOf(again)).toBe('ERR_TICKET_USED');
      else expect(codeOf(again)).toBe(elapsedMs >= 1000 ? 'ERR_TICKET_EXPIRED' : 'ok');
      expect(codeOf(store.consume(ticket, binding))).toBe('ERR_TICKET_USED');
    },
  );

  it('a replay is ERR_TICKET_USED until swept, then ERR_TICKET_UNKNOWN, never ok', () => {
    const { store, clock } = setup();
    const { ticket } = store.issue({ ...binding, ttlMs: 1000 });
    expect(codeOf(store.consume(ticket, binding))).toBe('ok');
    expect(codeOf(store.consume(ticket, binding))).toBe('ERR_TICKET_USED');
    clock.t += 1000;
    expect(codeOf(store.consume(ticket, binding))).toBe('ERR_TICKET_USED');
    expect(store.expire()).toBe(1);
    expect(codeOf(store.consume(ticket, binding))).toBe('ERR_TICKET_UNKNOWN');
  });

  it('keeps tickets apart: consuming one leaves the others', () => {
    const { store } = setup();
    const a = store.issue(binding);
    const b = store.issue({ vm: 'db', from: 'agent-a' });
    expect(codeOf(store.consume(a.ticket, binding))).toBe('ok');
    expect(store.outstanding).toBe(1);
    expect(codeOf(store.consume(b.ticket, { vm: 'db', from: 'agent-a' }))).toBe('ok');
    expect(store.outstanding).toBe(0);
  });
});

describe('TicketStore bound and expire()', () => {
  it('expire() drops expired tickets, spent or not, and keeps the live ones', () => {
    const { store, clock } = setup();
    const short = store.issue({ ...binding, ttlMs: 100 });
    store.issue({ ...binding, ttlMs: 100 });
    const long = store.issue({ ...binding, ttlMs: 10_000 });
    store.consume(short.ticket, binding);
    expect(store.expire()).toBe(0);
    clock.t += 100;
    expect(store.expire()).toBe(2);
    expect(store.size).toBe(1);
    expect(codeOf(store.consume(long.ticket, binding))).toBe('ok');
  });

  it('refuses a ticket beyond maxTickets outstanding with ERR_TICKET_LIMIT, and never grows past it', () => {
    const { store } = setup(3);
    for (let i = 0; i < 3; i++) store.issue(binding);
    expect(thrownCode(() => store.issue(binding))).toBe('ERR_TICKET_LIMIT');
    expect(store.size).toBe(3);
  });

  it('makes room by dropping expired tickets first, oldest first', () => {
    const { store, clock } = setup(3);
    const old = store.issue({ ...binding, ttlMs: 100 });
    const live = store.issue({ ...binding, ttlMs: 10_000 });
    const older = store.issue({ ...binding, ttlMs: 50 });
    clock.t += 100;
    const fresh = store.issue(binding);
    expect(store.size).toBe(2);
    expect(codeOf(store.consume(old.ticket, binding))).toBe('ERR_TICKET_UNKNOWN');
    expect(codeOf(store.consume(older.ticket, binding))).toBe('ERR_TICKET_UNKNOWN');
    expect(codeOf(store.consume(live.ticket, binding))).toBe('ok');
    expect(codeOf(store.consume(fresh.ticket, binding))).toBe('ok');
  });

  it('then drops spent tickets, oldest first, only as many as needed', () => {
    const { store } = setup(3);
    const a = store.issue(binding);
    const b = store.issue(binding);
    const c = store.issue(binding);
    store.consume(a.ticket, binding);
    store.consume(b.ticket, binding);
    store.issue(binding);
    expect(store.size).toBe(3);
    expect(codeOf(store.consume(a.ticket, binding))).toBe('ERR_TICKET_UNKNOWN');
    expect(codeOf(store.consume(b.ticket, binding))).toBe('ERR_TICKET_USED');
    expect(codeOf(store.consume(c.ticket, binding))).toBe('ok');
  });

  it('stays bounded under a flood of issues with a default store', () => {
    const { store, clock } = setup();
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      try {
        store.issue({ ...binding, ttlMs: 1000 });
      } catch {
        refused++;
      }
      expect(store.size).toBeLessThanOrEqual(1024);
      if (i === 1500) clock.t += 1000;
    }
    expect(refused).toBeGreaterThan(0);
    expect(store.size).toBe(1024);
  });
});

function flipLastBit(ticket: string): string {
  const bytes = Buffer.from(ticket, 'base64url');
  bytes[bytes.length - 1]! ^= 1;
  return bytes.toString('base64url');
}

function toBase64(ticket: string): string {
  // The same 32 bytes in standard, padded base64: 44 characters, not a ticket.
  return Buffer.from(ticket, 'base64url').toString('base64');
}
