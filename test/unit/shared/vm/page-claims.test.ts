/**
 * Exactly-once page installs with two writers (page-claims.ts): a page present is never claimed,
 * a claim is its holder's until released, and releasing frees only the holder's claims on pages
 * still absent.
 */
import { describe, expect, it } from 'vitest';
import { CLAIM_FAULT_THREAD, CLAIM_MAIN, PageClaims, PresenceMap } from '@livemig/shared/vm';

describe('PageClaims', () => {
  it('one writer per absent page; none for a present page', () => {
    const presence = new PresenceMap(64);
    const isPresent = (n: number): boolean => presence.has(n);
    const claims = new PageClaims(64);
    presence.mark(3);
    expect(claims.claim(3, CLAIM_MAIN, isPresent)).toBe(false);
    expect(claims.claim(5, CLAIM_FAULT_THREAD, isPresent)).toBe(true);
    expect(claims.claim(5, CLAIM_FAULT_THREAD, isPresent)).toBe(true); // its holder, again (the frame's end)
    expect(claims.claim(5, CLAIM_MAIN, isPresent)).toBe(false);
    expect(claims.ownerOf(5)).toBe(CLAIM_FAULT_THREAD);
    presence.mark(5);
    expect(claims.claim(5, CLAIM_FAULT_THREAD, isPresent)).toBe(false); // installed: nobody writes it again
  });

  it("release frees the holder's claims on pages still absent, and nothing else", () => {
    const presence = new PresenceMap(64);
    const isPresent = (n: number): boolean => presence.has(n);
    const claims = new PageClaims(64);
    for (const page of [1, 2, 3]) claims.claim(page, CLAIM_FAULT_THREAD, isPresent);
    claims.claim(4, CLAIM_MAIN, isPresent);
    presence.mark(2);
    expect(claims.release(CLAIM_FAULT_THREAD, isPresent)).toBe(2);
    expect([1, 2, 3, 4].map((n) => claims.ownerOf(n))).toEqual([0, CLAIM_FAULT_THREAD, 0, CLAIM_MAIN]);
    expect(claims.claim(1, CLAIM_MAIN, isPresent)).toBe(true);
  });

  it('the presence count is shared: marks from a view of the same buffer count once', () => {
    const host = new PresenceMap(100);
    const thread = new PresenceMap(100, { buffer: host.buffer });
    expect(thread.mark(7)).toBe(true);
    expect(host.mark(7)).toBe(false);
    expect(host.mark(8)).toBe(true);
    expect([host.missing, thread.missing]).toEqual([98, 98]);
    thread.markAll();
    expect(host.missing).toBe(0);
  });
});
