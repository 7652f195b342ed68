import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../../agent-source/src/migration/sections/disk/buffer-pool.ts';

describe('BufferPool', () => {
  it('hands back what was given, keeps at most maxFree, and drops buffers of another size', () => {
    const pool = new BufferPool(1024, 2);
    const [a, b, c] = [pool.take(), pool.take(), pool.take()];
    expect(a.length).toBe(1024);
    expect(new Set([a, b, c]).size).toBe(3);
    pool.give(a);
    pool.give(b);
    pool.give(c); // over maxFree: dropped
    pool.give(new Uint8Array(512)); // not the pool's size: dropped
    const again = [pool.take(), pool.take()];
    expect(new Set(again)).toEqual(new Set([a, b]));
    const fresh = pool.take();
    expect(fresh).not.toBe(c);
    expect(fresh.length).toBe(1024);
  });
});
