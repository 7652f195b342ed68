/**
 * Single-use migration tickets: the destination issues one for a VM and the source certificate
 * it expects, and the incoming connection must present it. A ticket is 256 random bits
 * (base64url), bound to (vm, from), expiring after its ttl, and spent by the first presentation
 * whatever the outcome. No I/O but the random bytes; the clock is injectable.
 *
 * Secrets are never compared with `===`: the store is keyed by a SHA-256 of the ticket (a hash
 * lookup tells a prober nothing about the secret) and the stored bytes are then compared with
 * crypto.timingSafeEqual. The store is bounded: at most `maxTickets` entries, spent and expired
 * ones dropped first (oldest first), beyond that `issue` refuses with ERR_TICKET_LIMIT.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MigrationError } from '../errors.ts';

/** Ticket entropy: 256 bits. */
export const TICKET_BYTES = 32;
/** @default ttl of a ticket, ms. */
export const DEFAULT_TICKET_TTL_MS = 60_000;
/** Longest ttl accepted, ms: a ticket is for a migration about to start, not a credential. */
export const MAX_TICKET_TTL_MS = 60 * 60_000;
/** @default bound on the tickets kept. */
export const DEFAULT_MAX_TICKETS = 1024;

export type TicketErrorCode = 'ERR_TICKET_UNKNOWN' | 'ERR_TICKET_EXPIRED' | 'ERR_TICKET_USED' | 'ERR_TICKET_MISMATCH';

export type TicketCheck = { ok: true } | { ok: false; code: TicketErrorCode; reason: string };

export interface TicketBinding {
  /** The VM the migration carries. */
  vm: string;
  /** The certificate name of the source expected to present the ticket. */
  from: string;
}

export interface IssuedTicket extends TicketBinding {
  /** The secret, base64url (43 characters). */
  ticket: string;
  /** When it stops being accepted, on the store's clock (ms). */
  expiresAt: number;
}

export interface TicketStoreOptions {
  /** Milliseconds, monotonic enough for ttl. @default Date.now */
  now?: () => number;
  /** Most tickets kept (outstanding, spent or expired but not yet swept). @default 1024 */
  maxTickets?: number;
}

interface Entry extends TicketBinding {
  secret: Buffer;
  expiresAt: number;
  used: boolean;
}

export class TicketStore {
  readonly #now: () => number;
  readonly #max: number;
  /** sha256(secret) hex → entry, in issue order (Map keeps insertion order). */
  readonly #entries = new Map<string, Entry>();

  constructor(options: TicketStoreOptions = {}) {
    const max = options.maxTickets ?? DEFAULT_MAX_TICKETS;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `maxTickets must be a positive integer, not ${max}`);
    }
    this.#now = options.now ?? Date.now;
    this.#max = max;
  }

  /** Tickets kept now (outstanding, spent, or expired and not yet swept); never over maxTickets. */
  get size(): number {
    return this.#entries.size;
  }

  /** Tickets that could still be consumed now. */
  get outstanding(): number {
    const now = this.#now();
    let count = 0;
    for (const entry of this.#entries.values()) if (!entry.used && now < entry.expiresAt) count++;
    return count;
  }

  /**
   * A new single-use ticket for `vm` from the source named `from`, valid for `ttlMs`.
   * Throws ERR_INVALID_ARGUMENT for a bad binding or ttl, ERR_TICKET_LIMIT when maxTickets
   * tickets are still outstanding.
   */
  issue({ vm, from, ttlMs = DEFAULT_TICKET_TTL_MS }: TicketBinding & { ttlMs?: number }): IssuedTicket {
    checkName(vm, 'vm');
    checkName(from, 'from');
    if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TICKET_TTL_MS) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `ticket ttl must be a finite number of ms in (0, ${MAX_TICKET_TTL_MS}], not ${String(ttlMs)}`,
      );
    }
    this.#makeRoom();
    const secret = randomBytes(TICKET_BYTES);
    const expiresAt = this.#now() + ttlMs;
    this.#entries.set(keyOf(secret), { vm, from, secret, expiresAt, used: false });
    return { ticket: secret.toString('base64url'), vm, from, expiresAt };
  }

  /**
   * Spend `ticket` for a migration of `vm` from `from`. Any ticket found is spent by this call,
   * even when it is refused for another VM or source: a ticket seen in the wrong hands is burnt.
   */
  consume(ticket: string, { vm, from }: TicketBinding): TicketCheck {
    const secret = decodeTicket(ticket);
    const entry = secret && this.#entries.get(keyOf(secret));
    if (!secret || !entry || !timingSafeEqual(entry.secret, secret)) {
      return refuse('ERR_TICKET_UNKNOWN', 'this agent issued no such ticket (or it was swept after expiring)');
    }
    if (entry.used) return refuse('ERR_TICKET_USED', 'the ticket was already used; tickets are single-use');
    entry.used = true;
    if (this.#now() >= entry.expiresAt) {
      return refuse('ERR_TICKET_EXPIRED', `the ticket expired ${this.#now() - entry.expiresAt} ms ago`);
    }
    if (entry.vm !== vm || entry.from !== from) {
      const which = entry.vm !== vm ? `VM "${entry.vm}", not "${vm}"` : `source "${entry.from}", not "${from}"`;
      return refuse('ERR_TICKET_MISMATCH', `the ticket was issued for ${which}; it is spent now`);
    }
    return { ok: true };
  }

  /** Drop every expired ticket, spent or not; returns how many were dropped. */
  expire(): number {
    const now = this.#now();
    let dropped = 0;
    for (const [key, entry] of this.#entries) {
      if (now >= entry.expiresAt) {
        this.#entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Make room for one more: drop expired, then spent ones, oldest first; refuse when all are live. */
  #makeRoom(): void {
    if (this.#entries.size < this.#max) return;
    this.expire();
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size < this.#max) return;
      if (entry.used) this.#entries.delete(key);
    }
    if (this.#entries.size >= this.#max) {
      throw new MigrationError(
        'ERR_TICKET_LIMIT',
        `${this.#entries.size} migration tickets are outstanding (at most ${this.#max}); use or let some expire first`,
      );
    }
  }
}

/** The 32 secret bytes of a well-formed ticket, or undefined (no error detail: it is a probe). */
function decodeTicket(ticket: unknown): Buffer | undefined {
  if (typeof ticket !== 'string' || ticket.length !== Math.ceil((TICKET_BYTES * 4) / 3)) return undefined;
  const secret = Buffer.from(ticket, 'base64url');
  if (secret.length !== TICKET_BYTES || secret.toString('base64url') !== ticket) return undefined;
  return secret;
}

function keyOf(secret: Buffer): string {
  return createHash('sha256').update(secret).digest('hex');
}

function checkName(value: unknown, what: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `a ticket needs a non-empty ${what}`);
  }
}

function refuse(code: TicketErrorCode, reason: string): TicketCheck {
  return { ok: false, code, reason };
}
