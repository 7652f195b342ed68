/**
 * The probe client: a request every `intervalMs` to a kv service over UDP, every reply recorded,
 * then summarizeProbe(). Sends are scheduled on absolute times (start + k × interval), so a late
 * timer catches up instead of drifting. With `writes`, every request is a PUT of a distinct key;
 * afterwards every acknowledged PUT is read back (GET, a few tries each) and a value that is not
 * there is a lost write — what a migration must never cause.
 */
import dgram from 'node:dgram';
import type { HostPort } from '@livemig/shared';
import { decodeKvReply, encodeKvRequest, KvOp, KvStatus } from '@livemig/shared/kv';
import { summarizeProbe, type ProbeSummary } from './summarize.ts';

export interface ProbeOptions {
  target: HostPort;
  /** @default 1 */
  intervalMs?: number;
  /** @default 10000 */
  durationMs?: number;
  /** PUT distinct keys, then read every acknowledged one back. @default false */
  writes?: boolean;
  /** How long to wait for late replies after the last request. @default 250 */
  graceMs?: number;
}

export interface ProbeResult extends ProbeSummary {
  target: string;
  intervalMs: number;
  durationMs: number;
  /** Present with `writes`: acknowledged PUTs, and how many of them could not be read back. */
  writes?: { acknowledged: number; lostWrites: number };
  /** Socket errors seen (e.g. ICMP port unreachable), counted, never fatal. */
  socketErrors: number;
}

/** A value derived from the key, so a read-back can tell a right value from a stale one. */
const valueOf = (key: number): number => (Math.imul(key, 2654435761) ^ 0x5bd1e995) >>> 0;

export async function runProbe(options: ProbeOptions): Promise<ProbeResult> {
  const intervalMs = options.intervalMs ?? 1;
  const durationMs = options.durationMs ?? 10_000;
  const graceMs = options.graceMs ?? 250;
  const socket = dgram.createSocket(options.target.host.includes(':') ? 'udp6' : 'udp4');
  const sentAt = new Map<number, number>();
  const repliedAt = new Map<number, number>();
  const acknowledged = new Set<number>();
  const readBack = new Map<number, number>();
  let socketErrors = 0;
  socket.on('error', () => (socketErrors += 1));
  socket.on('message', (bytes) => {
    const reply = decodeKvReply(bytes);
    if (!reply) return;
    if (reply.op === KvOp.Get) {
      if (reply.status === KvStatus.Ok) readBack.set(reply.key, reply.value);
      return;
    }
    if (sentAt.has(reply.id) && !repliedAt.has(reply.id)) repliedAt.set(reply.id, performance.now());
    if (reply.op === KvOp.Put && reply.status === KvStatus.Ok) acknowledged.add(reply.key);
  });
  const send = (op: KvOp, id: number, key: number): void => {
    socket.send(
      encodeKvRequest({ op, id, key, value: op === KvOp.Put ? valueOf(key) : 0 }),
      options.target.port,
      options.target.host,
    );
  };
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  try {
    const start = performance.now();
    let next = 1;
    while (performance.now() - start < durationMs) {
      const due = Math.floor((performance.now() - start) / intervalMs) + 1;
      for (; next <= due && (next - 1) * intervalMs < durationMs; next++) {
        sentAt.set(next, performance.now());
        send(options.writes ? KvOp.Put : KvOp.Get, next, next);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + next * intervalMs - performance.now())));
    }
    await new Promise((resolve) => setTimeout(resolve, graceMs));
    const summary = summarizeProbe(sentAt, repliedAt, start, performance.now());
    const result: ProbeResult = {
      target: `${options.target.host}:${options.target.port}`,
      intervalMs,
      durationMs,
      ...summary,
      socketErrors,
    };
    if (options.writes) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const missing = [...acknowledged].filter((key) => readBack.get(key) !== valueOf(key));
        if (missing.length === 0) break;
        for (const key of missing) send(KvOp.Get, 0, key);
        await new Promise((resolve) => setTimeout(resolve, graceMs));
      }
      const lostWrites = [...acknowledged].filter((key) => readBack.get(key) !== valueOf(key)).length;
      result.writes = { acknowledged: acknowledged.size, lostWrites };
    }
    return result;
  } finally {
    socket.close();
  }
}
