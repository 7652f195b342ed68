/**
 * Child process of bench/migration.bench.ts: one end of the raw-socket baseline — the same bytes
 * as a migration of a 1 GiB random VM, between two separate processes, with no protocol at all.
 *
 * argv: send <totalBytes> <memoryBytes>
 *   Fills `memoryBytes` of a SharedArrayBuffer with random bytes (as a source's guest memory),
 *   listens on 127.0.0.1:0, tells the parent `{ port }` over IPC, accepts one connection and
 *   writes `totalBytes` as 1 MiB views of that memory (no copy, cycling through it), honouring
 *   backpressure (4 MiB high-water mark, as the agents), then closes and exits.
 * argv: recv <port> <totalBytes>
 *   Tells the parent `{ ready: true }`, waits for 'go', connects (the receiver connects so it can
 *   read with `onread` into one reused 256 KiB buffer — the fastest Node receive path), counts the
 *   bytes and tells the parent `{ ms, bytes }`: from the connect call to the last byte.
 */
import net from 'node:net';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';

const MiB = 1024 * 1024;
const HWM = 4 * MiB;
const [mode, a = '0', b = '0'] = process.argv.slice(2);

function tell(message: unknown): void {
  process.send?.(message);
}

async function send(total: number, memoryBytes: number): Promise<void> {
  const memory = new Uint8Array(new SharedArrayBuffer(memoryBytes));
  // randomFillSync tops out at 2^31 − 1 bytes per call.
  for (let at = 0; at < memoryBytes; at += 256 * MiB) randomFillSync(memory.subarray(at, at + 256 * MiB));
  const server = net.createServer({ highWaterMark: HWM } as net.ServerOpts);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  tell({ port: (server.address() as net.AddressInfo).port });
  const [socket] = (await once(server, 'connection')) as [net.Socket];
  socket.setNoDelay(true);
  let at = 0;
  for (let sent = 0; sent < total; sent += MiB) {
    const n = Math.min(MiB, total - sent);
    if (at + n > memoryBytes) at = 0;
    if (!socket.write(memory.subarray(at, at + n))) await once(socket, 'drain');
    at += n;
  }
  socket.end();
  await once(socket, 'close');
  server.close();
}

async function recv(port: number, total: number): Promise<void> {
  const buffer = Buffer.allocUnsafe(256 * 1024);
  tell({ ready: true });
  await once(process, 'message');
  let bytes = 0;
  let last = 0;
  const t0 = performance.now();
  const socket = net.connect({
    port,
    host: '127.0.0.1',
    onread: {
      buffer,
      callback: (n: number) => {
        bytes += n;
        last = performance.now();
        return true;
      },
    },
  });
  await once(socket, 'close');
  if (bytes !== total) throw new Error(`raw receiver: got ${bytes} of ${total} bytes`);
  tell({ ms: last - t0, bytes });
}

if (mode === 'send') await send(Number(a), Number(b));
else if (mode === 'recv') await recv(Number(a), Number(b));
else throw new Error(`raw-socket-peer: unknown mode ${mode}`);
process.disconnect?.();
