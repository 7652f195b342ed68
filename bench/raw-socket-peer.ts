/**
 * Child process of bench/migration.bench.ts and bench/security.bench.ts (through rawOnce in
 * bench-migrate.ts): one end of the raw-socket baseline — the same bytes as a migration of a
 * 1 GiB random VM, between two separate processes, with no protocol at all.
 *
 * With a last argument <pkiDir> (securePki, cli/lab/secure.ts) the socket is mutual TLS 1.3
 * as the agents speak it: the listening end presents certificate `dest` and requires a client
 * certificate of the fleet CA, the connecting end presents `source` and checks the name `dest`
 * (only the direction of the bulk bytes is reversed, so the receiver can use `onread`).
 *
 * argv: send <totalBytes> <memoryBytes> [pkiDir]
 *   Fills `memoryBytes` of a SharedArrayBuffer with random bytes (as a source's guest memory),
 *   listens on 127.0.0.1:0, tells the parent `{ port }` over IPC, accepts one connection and
 *   writes `totalBytes` as 1 MiB views of that memory (no copy, cycling through it), honouring
 *   backpressure (4 MiB high-water mark, as the agents), then closes and exits.
 * argv: recv <port> <totalBytes> [pkiDir]
 *   Tells the parent `{ ready: true }`, waits for 'go', connects (the receiver connects so it can
 *   read with `onread` into one reused 256 KiB buffer — the fastest Node receive path, over TLS
 *   too), counts the bytes and tells the parent `{ ms, bytes }`: from the connect call (the TLS
 *   handshake included) to the last byte; with TLS also `{ protocol, cipher }`.
 */
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { SECURE_NAMES, TLS13_ONLY, tlsCredentials } from '../cli/lab/secure.ts';

const MiB = 1024 * 1024;
const HWM = 4 * MiB;
const [mode, a = '0', b = '0', pkiDir] = process.argv.slice(2);

function tell(message: unknown): void {
  process.send?.(message);
}

async function send(total: number, memoryBytes: number): Promise<void> {
  const memory = new Uint8Array(new SharedArrayBuffer(memoryBytes));
  // randomFillSync tops out at 2^31 − 1 bytes per call.
  for (let at = 0; at < memoryBytes; at += 256 * MiB) randomFillSync(memory.subarray(at, at + 256 * MiB));
  const options = { highWaterMark: HWM } as net.ServerOpts;
  const server = pkiDir
    ? tls.createServer({
        ...options,
        ...TLS13_ONLY,
        ...(await tlsCredentials(pkiDir, SECURE_NAMES.dest)),
        requestCert: true,
        rejectUnauthorized: true,
      })
    : net.createServer(options);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  tell({ port: (server.address() as net.AddressInfo).port });
  const [socket] = (await once(server, pkiDir ? 'secureConnection' : 'connection')) as [net.Socket];
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
  const mine = pkiDir ? await tlsCredentials(pkiDir, SECURE_NAMES.source) : undefined;
  const t0 = performance.now();
  const options: net.NetConnectOpts = {
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
  };
  const socket = mine
    ? tls.connect({
        ...options,
        ...TLS13_ONLY,
        ...mine,
        checkServerIdentity: (_host, peer) => tls.checkServerIdentity(SECURE_NAMES.dest, peer),
      })
    : net.connect(options);
  if (socket instanceof tls.TLSSocket) await once(socket, 'secureConnect');
  const negotiated =
    socket instanceof tls.TLSSocket ? { protocol: socket.getProtocol(), cipher: socket.getCipher().name } : {};
  await once(socket, 'close');
  if (bytes !== total) throw new Error(`raw receiver: got ${bytes} of ${total} bytes`);
  tell({ ms: last - t0, bytes, ...negotiated });
}

if (mode === 'send') await send(Number(a), Number(b));
else if (mode === 'recv') await recv(Number(a), Number(b));
else throw new Error(`raw-socket-peer: unknown mode ${mode}`);
process.disconnect?.();
