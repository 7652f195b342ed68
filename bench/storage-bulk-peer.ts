/**
 * Child process of bench/storage.bench.ts: one end of its baseline, a plain bulk copy of the
 * disk's allocated bytes over the same link the migrations use (in the lab: from the `source`
 * namespace to the `dest` namespace, through the delay relay when the lab has one), one TCP
 * connection and no protocol at all. Prints one JSON line on stdout.
 *
 * argv: sink <host> <bytes>
 *   Listens on <host>:0 and prints `{"port":…}`; takes one connection, counts <bytes>, answers
 *   one byte and exits.
 * argv: pour <host:port> <bytes>
 *   Connects (the clock starts before the connect call), writes <bytes> as 1 MiB views of a
 *   64 MiB random buffer, honouring backpressure (4 MiB high-water mark, as the agents), and
 *   prints `{"ms":…}` once the sink's answer arrived: connect + transfer + half a round trip.
 */
import net from 'node:net';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { parseHostPort } from '@livemig/shared';

const MiB = 1024 * 1024;
const [mode, where = '', bytesText = '0'] = process.argv.slice(2);
const total = Number(bytesText);
const say = (line: unknown): boolean => process.stdout.write(JSON.stringify(line) + '\n');

async function sink(host: string): Promise<void> {
  const server = net.createServer();
  server.listen(0, host);
  await once(server, 'listening');
  say({ port: (server.address() as net.AddressInfo).port });
  const [socket] = (await once(server, 'connection')) as [net.Socket];
  server.close();
  let got = 0;
  socket.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got === total) socket.end(Buffer.of(1));
  });
  await once(socket, 'close');
  if (got !== total) throw new Error(`bulk sink: got ${got} of ${total} bytes`);
}

async function pour(target: string): Promise<void> {
  const data = randomFillSync(Buffer.allocUnsafe(64 * MiB));
  const t0 = performance.now();
  const socket = net.connect({ ...parseHostPort(target), highWaterMark: 4 * MiB } as net.NetConnectOpts);
  socket.setNoDelay(true);
  await once(socket, 'connect');
  for (let sent = 0, at = 0; sent < total; sent += MiB, at = (at + MiB) % data.length) {
    if (!socket.write(data.subarray(at, at + Math.min(MiB, total - sent)))) await once(socket, 'drain');
  }
  await once(socket, 'data');
  say({ ms: performance.now() - t0 });
  socket.destroy();
}

if (mode === 'sink') await sink(where);
else if (mode === 'pour') await pour(where);
else throw new Error(`storage-bulk-peer: unknown mode ${mode}`);
