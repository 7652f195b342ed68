/**
 * The compress pool: the same results as the synchronous codecs, computed in worker threads
 * (the event loop keeps turning meanwhile); inputs are snapshots; a bounded queue refuses with
 * ERR_BUFFER_OVERFLOW; a peer's bad batch rejects with ERR_BAD_ENCODING and the pool goes on;
 * counters add up; and close() cancels what is pending and leaves no thread behind.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { isMigrationError } from '../../../../shared/src/errors.ts';
import { compressSync, decompressSync } from '../../../../shared/src/codec/compress.ts';
import { CompressPool, type CompressPoolOptions } from '../../../../shared/src/codec/compress-pool.ts';
import { PAGE, makePage, sameBytes } from './arbitraries.ts';

const pools: CompressPool[] = [];
function pool(options?: CompressPoolOptions): CompressPool {
  const p = new CompressPool(options);
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return isMigrationError(error) ? error.code : `not a MigrationError: ${String(error)}`;
  }
  return undefined;
}

function textBatch(pages: number, seed = 0): Uint8Array {
  return Uint8Array.from(
    Buffer.concat(Array.from({ length: pages }, (_, i) => makePage(i % 5 === 4 ? 'random' : 'text', seed + i))),
  );
}

/** OS threads of this process (Linux), or undefined elsewhere. */
function osThreads(): number | undefined {
  try {
    return readdirSync('/proc/self/task').length;
  } catch {
    return undefined;
  }
}

describe('CompressPool', () => {
  it('compresses and decompresses in a worker, byte for byte as the synchronous codecs', async () => {
    const p = pool();
    for (const codec of ['lz4', 'brotli'] as const) {
      const input = textBatch(64);
      const packed = await p.compress(input, codec);
      expect(sameBytes(packed, compressSync(input, codec))).toBe(true);
      expect(packed.length).toBeLessThan(input.length);
      const unpacked = await p.decompress(packed, input.length, codec);
      expect(sameBytes(unpacked, input)).toBe(true);
      expect(sameBytes(decompressSync(packed, input.length, codec), input)).toBe(true);
    }
    expect(p.threads).toBe(1);
  });

  it("a job's brotli quality is its own: byte for byte the synchronous codec at that quality, one pool for all", async () => {
    const p = pool({ codec: 'brotli' });
    const input = textBatch(64);
    const [fast, dense] = await Promise.all([p.compress(input, 'brotli', 1), p.compress(input, 'brotli', 5)]);
    expect(sameBytes(fast, compressSync(input, 'brotli', { brotliQuality: 1 }))).toBe(true);
    expect(sameBytes(dense, compressSync(input, 'brotli', { brotliQuality: 5 }))).toBe(true);
    expect(sameBytes(fast, dense)).toBe(false);
    // Either decodes without knowing the quality (the wire does not carry it).
    expect(sameBytes(await p.decompress(dense, input.length), input)).toBe(true);
    expect(await codeOf(p.compress(input, 'brotli', 12))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('takes a snapshot: changing the input after the call does not change the result', async () => {
    const p = pool({ codec: 'brotli' });
    const input = new Uint8Array(new SharedArrayBuffer(8 * PAGE));
    input.set(textBatch(8));
    const expected = input.slice();
    const result = p.compress(input);
    input.fill(0xff); // the vCPU (or a reused buffer) changes it at once
    expect(sameBytes(await p.decompress(await result, expected.length), expected)).toBe(true);
  });

  it('runs jobs on up to `workers` threads and counts bytes, jobs and busy time per worker', async () => {
    const p = pool({ workers: 2 });
    const inputs = Array.from({ length: 8 }, (_, i) => textBatch(32, i * 100));
    const packed = await Promise.all(inputs.map((input) => p.compress(input)));
    expect(p.threads).toBeLessThanOrEqual(2);
    const unpacked = await Promise.all(packed.map((b, i) => p.decompress(b, inputs[i]!.length)));
    unpacked.forEach((u, i) => expect(sameBytes(u, inputs[i]!)).toBe(true));
    const stats = p.stats;
    const raw = inputs.reduce((sum, b) => sum + b.length, 0);
    const compressed = packed.reduce((sum, b) => sum + b.length, 0);
    expect(stats.compressed).toEqual({ jobs: 8, inputBytes: raw, outputBytes: compressed });
    expect(stats.decompressed).toEqual({ jobs: 8, inputBytes: compressed, outputBytes: raw });
    expect(stats.busyMs).toHaveLength(2);
    expect(stats.busyMs[0]).toBeGreaterThan(0);
    expect(stats).toMatchObject({ failed: 0, queued: 0, running: 0 });
  });

  it('raiseWorkers() lets more threads run from then on (never fewer), each started on demand', async () => {
    const p = pool({ workers: 1 });
    const inputs = Array.from({ length: 6 }, (_, i) => textBatch(32, i * 100));
    await Promise.all(inputs.map((input) => p.compress(input)));
    expect(p.threads).toBe(1);
    p.raiseWorkers(2);
    p.raiseWorkers(1); // never fewer
    expect(p.workers).toBe(2);
    expect(p.stats.busyMs).toHaveLength(2);
    // Six jobs at once: the second slot's worker starts while the first is busy, and works.
    const packed = await Promise.all(inputs.map((input) => p.compress(input)));
    expect(p.threads).toBe(2);
    expect(p.stats.busyMs[1]).toBeGreaterThan(0);
    const unpacked = await Promise.all(packed.map((b, i) => p.decompress(b, inputs[i]!.length)));
    unpacked.forEach((u, i) => expect(sameBytes(u, inputs[i]!)).toBe(true));
    expect(() => p.raiseWorkers(0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('keeps the event loop free while a long job runs', async () => {
    const p = pool({ codec: 'brotli', brotliQuality: 9 });
    const input = textBatch(1024); // 4 MiB at quality 9: hundreds of ms of codec work
    await p.compress(textBatch(1)); // the worker is started
    let lastTick = performance.now();
    let worstGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - lastTick);
      lastTick = now;
    }, 5);
    const started = performance.now();
    await p.compress(input);
    const took = performance.now() - started;
    clearInterval(timer);
    expect(took).toBeGreaterThan(100);
    // compressSync would have stalled the loop for the whole job.
    expect(worstGap).toBeLessThan(took / 2);
  });

  it('refuses past the queue bound with ERR_BUFFER_OVERFLOW; whenNotFull() waits for room', async () => {
    const p = pool({ workers: 1, maxQueued: 2, codec: 'brotli', brotliQuality: 6 });
    const input = textBatch(64);
    const accepted = [p.compress(input), p.compress(input), p.compress(input)]; // 1 running + 2 waiting
    expect(p.pending).toBe(3);
    expect(p.full).toBe(true);
    expect(await codeOf(p.compress(input))).toBe('ERR_BUFFER_OVERFLOW');
    await p.whenNotFull();
    expect(p.full).toBe(false);
    await Promise.all(accepted);
    expect(p.stats.compressed.jobs).toBe(3);
    // A bytes bound too (one job is always accepted into an empty queue).
    const q = pool({ workers: 1, maxQueuedBytes: 64 * PAGE, codec: 'brotli', brotliQuality: 6 });
    const big = [q.compress(input), q.compress(input)];
    expect(await codeOf(q.compress(input))).toBe('ERR_BUFFER_OVERFLOW');
    await Promise.all(big);
  });

  it("rejects a peer's bad batch with ERR_BAD_ENCODING, and keeps working", async () => {
    const p = pool();
    expect(await codeOf(p.decompress(Uint8Array.from([16, 0, 0, 0, 1, 2, 3]), 16))).toBe('ERR_BAD_ENCODING');
    const bomb = compressSync(new Uint8Array(32 * 1024 * 1024), 'brotli');
    expect(await codeOf(p.decompress(bomb, 4 * PAGE, 'brotli'))).toBe('ERR_BAD_ENCODING');
    expect(await codeOf(p.decompress(bomb, 2 ** 40, 'brotli'))).toBe('ERR_BAD_ENCODING'); // refused before any work
    expect(await codeOf(p.compress(new Uint8Array(10), 'zstd' as 'lz4'))).toBe('ERR_INVALID_ARGUMENT');
    const input = textBatch(4);
    expect(sameBytes(await p.decompress(await p.compress(input), input.length), input)).toBe(true);
    expect(p.stats.failed).toBe(2);
  });

  it('refuses bad options', () => {
    for (const options of [
      { workers: 0 },
      { workers: 1.5 },
      { maxQueued: 0 },
      { maxBatchBytes: -1 },
      { brotliQuality: 12 },
      { codec: 'zip' as 'lz4' },
    ]) {
      let code: string | undefined;
      try {
        new CompressPool(options);
      } catch (error) {
        code = isMigrationError(error) ? error.code : undefined;
      }
      expect(code).toBe('ERR_INVALID_ARGUMENT');
    }
  });

  it('close() cancels pending jobs with ERR_CANCELLED and leaves no thread behind', async () => {
    const baseline = osThreads();
    const p = new CompressPool({ workers: 3, codec: 'brotli', brotliQuality: 9 });
    const input = textBatch(256);
    const jobs = Array.from({ length: 6 }, () => p.compress(input));
    expect(p.threads).toBe(3);
    if (baseline !== undefined) expect(osThreads()).toBeGreaterThanOrEqual(baseline + 3);
    const codes = Promise.all(jobs.map(codeOf));
    await p.close();
    expect(await codes).toEqual(Array(6).fill('ERR_CANCELLED'));
    expect(p.threads).toBe(0);
    expect(await codeOf(p.compress(input))).toBe('ERR_CANCELLED');
    if (baseline !== undefined) {
      // The OS threads are gone too (a terminated worker's thread is joined shortly after).
      const deadline = Date.now() + 5000;
      while (osThreads()! > baseline && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(osThreads()).toBeLessThanOrEqual(baseline);
    }
  });

  it("an idle pool does not keep the process alive (workers are unref'd between jobs)", () => {
    const pool = new URL('../../../../shared/src/codec/compress-pool.ts', import.meta.url).href;
    const script = `const { CompressPool } = await import(${JSON.stringify(pool)});
      const p = new CompressPool({ workers: 2 });
      const out = await Promise.all([p.compress(new Uint8Array(1 << 20)), p.compress(new Uint8Array(1 << 20))]);
      console.log('compressed', out.length, 'threads', p.threads);`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../../../../', import.meta.url)),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('compressed 2 threads 2');
    expect(child.status).toBe(0); // exited by itself, never closed (a timeout kill gives null)
  });

  it('close() of a pool that never ran a job is immediate', async () => {
    const p = new CompressPool();
    await p.close();
    expect(p.threads).toBe(0);
  });
});
