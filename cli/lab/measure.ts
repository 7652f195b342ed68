/**
 * What a lab link actually gives, measured on the agents' path before it is trusted: RTT (median
 * of 20 one-byte TCP round trips) and bulk throughput (bytes counted by the receiver between its
 * first and last byte), with a small Node server in one host's namespace and a client in
 * another's. `checkProfile` fails when either is more than 20% off the profile: shaping must be
 * real, not assumed (`measureCheckedLink` measures a slow link again before it gives up on it).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { MigrationError } from '@livemig/shared';
import type { LinkProfile } from './profiles.ts';
import type { Lab } from './topology.ts';

export interface LinkMeasurement {
  rttMs: number;
  rateBps: number;
}

const SERVER = `
const net = require('node:net');
const server = net.createServer((s) => {
  s.setNoDelay(true);
  let mode = null, bytes = 0, first = 0;
  s.on('data', (chunk) => {
    if (mode === null) { mode = chunk[0]; chunk = chunk.subarray(1); }
    if (mode === 80) { s.write(Buffer.from([80])); return; }   // 'P': echo one byte per ping
    if (chunk.length && first === 0) first = performance.now();
    bytes += chunk.length;
  });
  s.on('end', () => { if (mode === 66) s.end(JSON.stringify({ bytes, ms: performance.now() - first })); });
});
server.listen(0, process.argv[1], () => console.log(server.address().port));
`;

const CLIENT = `
const net = require('node:net');
const [host, port, bulkBytes] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
function ping() {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, async () => {
      s.setNoDelay(true);
      const rtts = [];
      s.write(Buffer.from([80]));
      await new Promise((r) => s.once('data', r));
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        s.write(Buffer.from([80]));
        await new Promise((r) => s.once('data', r));
        rtts.push(performance.now() - t);
      }
      s.destroy();
      rtts.sort((a, b) => a - b);
      resolve(rtts[10]);
    });
  });
}
function bulk() {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      s.write(Buffer.from([66]));
      const pump = () => {
        while (sent < bulkBytes) { sent += chunk.length; if (!s.write(chunk)) return s.once('drain', pump); }
        s.end();
      };
      pump();
      let reply = '';
      s.on('data', (d) => (reply += d));
      s.on('end', () => { const r = JSON.parse(reply); resolve(r.bytes / (r.ms / 1000)); });
    });
  });
}
(async () => { const rttMs = await ping(); const rateBps = await bulk(); console.log(JSON.stringify({ rttMs, rateBps })); })();
`;

/**
 * Measure from host `from` to host `to`'s server, through `via` (HOST:PORT of a relay that
 * forwards to the server's port) when given — `via` is called with the server's port.
 */
export async function measureLink(
  lab: Lab,
  from: string,
  to: string,
  profile: LinkProfile,
  via?: (serverPort: number) => Promise<{ address: string; close(): Promise<void> }>,
): Promise<LinkMeasurement> {
  const target = lab.host(to);
  const server = spawn('ip', ['netns', 'exec', target.ns, process.execPath, '-e', SERVER, target.address], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: server.stdout }).once('line', (line) => resolve(Number(line)));
      server.once('exit', (code) =>
        reject(new MigrationError('ERR_INTERNAL', `lab: measurement server exited ${code}`)),
      );
    });
    const relay = via ? await via(port) : undefined;
    try {
      const [host, relayPort] = relay ? relay.address.split(':') : [target.address, String(port)];
      // About 2 s of traffic at the profile's rate, at least 4 MiB.
      const bulkBytes = String(Math.max(4 << 20, Math.round(profile.rateBps * 2)));
      const out = await new Promise<string>((resolve, reject) => {
        const client = spawn(
          'ip',
          ['netns', 'exec', lab.host(from).ns, process.execPath, '-e', CLIENT, host!, relayPort!, bulkBytes],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        let text = '';
        client.stdout.on('data', (d: Buffer) => (text += d.toString()));
        client.once('exit', (code) =>
          code === 0
            ? resolve(text)
            : reject(new MigrationError('ERR_INTERNAL', `lab: measurement client exited ${code}`)),
        );
      });
      return JSON.parse(out.trim()) as LinkMeasurement;
    } finally {
      await relay?.close();
    }
  } finally {
    server.kill();
  }
}

/**
 * How the measured link departs from the profile by more than `tolerance`: 'fast' when it is
 * faster than asked (rate above it, or an RTT below it) — the shaping is not real; 'slow' when it
 * is only slower; null when it is the profile's link.
 */
export function profileDeparture(
  measured: LinkMeasurement,
  profile: LinkProfile,
  tolerance = 0.2,
): 'fast' | 'slow' | null {
  const rateOff = (measured.rateBps - profile.rateBps) / profile.rateBps;
  // Sub-millisecond RTTs are dominated by the machine, not the link: judge them in absolute terms.
  const rttOff = profile.rttMs < 2 ? (measured.rttMs > 2 ? 1 : 0) : (measured.rttMs - profile.rttMs) / profile.rttMs;
  if (rateOff > tolerance || rttOff < -tolerance) return 'fast';
  if (rateOff < -tolerance || rttOff > tolerance) return 'slow';
  return null;
}

/** Throw ERR_INTERNAL when the measured link is more than `tolerance` off the profile. */
export function checkProfile(measured: LinkMeasurement, profile: LinkProfile, tolerance = 0.2): void {
  if (profileDeparture(measured, profile, tolerance) !== null) {
    throw new MigrationError(
      'ERR_INTERNAL',
      `lab link is not what profile "${profile.name}" asks: measured ${(measured.rateBps / 1e6).toFixed(2)} MB/s, ` +
        `RTT ${measured.rttMs.toFixed(2)} ms; wanted ${(profile.rateBps / 1e6).toFixed(2)} MB/s, RTT ${profile.rttMs} ms`,
    );
  }
}

/**
 * measureLink, then checkProfile — measured again, up to `attempts` times in all, while the link
 * only measures slower than its profile: the probe runs on the same cores as everything else, and
 * a loaded machine slows the probe, never the shaping. A link measured faster than its profile is
 * refused at once: no load makes shaping that is not there appear.
 */
export async function measureCheckedLink(
  lab: Lab,
  from: string,
  to: string,
  profile: LinkProfile,
  via?: (serverPort: number) => Promise<{ address: string; close(): Promise<void> }>,
  attempts = 3,
): Promise<LinkMeasurement> {
  for (let attempt = 1; ; attempt++) {
    const measured = await measureLink(lab, from, to, profile, via);
    if (attempt === attempts || profileDeparture(measured, profile) !== 'slow') {
      checkProfile(measured, profile);
      return measured;
    }
  }
}
