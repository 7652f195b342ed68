/**
 * Backpressure against a slow reader, for FramedSocket tests (plaintext and TLS): the reader
 * resumes slowly (pausing again every 20 ms) while the writer sends `batches` more frames,
 * honouring send()'s result. Returns the most bytes the writer ever held in its buffer.
 */
import type { FramedSocket } from '../../shared/src/protocol/index.ts';

export async function sendToSlowReader(
  writer: FramedSocket,
  reader: FramedSocket,
  send: () => boolean,
  batches: number,
): Promise<number> {
  let maxBuffered = writer.writableLength;
  const drain = writer.onDrain();
  const slow = setInterval(() => (reader.isPaused ? reader.resume() : reader.pause()), 20);
  try {
    reader.resume();
    await drain;
    for (let i = 0; i < batches; i++) {
      if (!send()) await writer.onDrain();
      maxBuffered = Math.max(maxBuffered, writer.writableLength);
    }
  } finally {
    clearInterval(slow);
    reader.resume();
  }
  return maxBuffered;
}
