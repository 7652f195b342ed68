// A compress worker thread (see compress-pool.ts): runs compress-codecs.mjs, the code the
// synchronous compressSync/decompressSync run, one job at a time. Plain JavaScript on purpose: it
// needs no TypeScript loader, so it starts in milliseconds.
//
// workerData: { brotliQuality, thread: SharedArrayBuffer (thread-cpu.mjs: its id, for its CPU time in reports) }
// in:  { id, op: 'compress' | 'decompress', codec, input: Uint8Array (its buffer transferred),
//        expectedLength, brotliQuality? }
// out: { id, output: Uint8Array (its buffer transferred), input (its buffer transferred back), busyMs }
//    | { id, error: { code, message }, input, busyMs }
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { compressWith, decompressWith } from './compress-codecs.mjs';
import { announceThread } from '../vm/thread-cpu.mjs';

announceThread(workerData?.thread);

const defaultQuality = workerData?.brotliQuality;

parentPort.on('message', ({ id, op, codec, input, expectedLength, brotliQuality }) => {
  const start = performance.now();
  try {
    const result =
      op === 'compress'
        ? compressWith(codec, input, brotliQuality ?? defaultQuality)
        : decompressWith(codec, input, expectedLength);
    // Hand back a buffer of its own: zlib's result is often a view of a larger chunk, which is
    // not worth transferring whole. (lz4-napi's Buffers are external memory: postMessage copies
    // those instead of moving them, which is fine.)
    const output =
      result.byteOffset === 0 && result.byteLength === result.buffer.byteLength
        ? new Uint8Array(result.buffer, 0, result.byteLength)
        : Uint8Array.prototype.slice.call(result);
    const busyMs = performance.now() - start;
    // The input's buffer goes back too, for the pool to reuse (unless the output is a view of it).
    const back = output.buffer === input.buffer ? [output.buffer] : [output.buffer, input.buffer];
    parentPort.postMessage({ id, output, input, busyMs }, back);
  } catch (error) {
    const busyMs = performance.now() - start;
    const code = typeof error?.code === 'string' ? error.code : 'ERR_INTERNAL';
    parentPort.postMessage({ id, error: { code, message: String(error?.message ?? error) }, input, busyMs }, [
      input.buffer,
    ]);
  }
});
