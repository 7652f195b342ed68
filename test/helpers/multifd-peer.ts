/**
 * One end of a multifd channel pair in a process of its own (test/integration/multifd-channels
 * and bench/multifd-pipeline.ts): real processes, real sockets, guest memory in SharedArrayBuffers,
 * the channel workers of shared/src/multifd. Driven by its parent over IPC.
 *
 * argv: recv <memoryBytes> <channels> [pkiDir] — allocates the destination's memory (touched
 *   first, as a pre-allocated destination: the figure is the copy, not first-touch page faults),
 *   listens, and sends { type: 'listening', ports, token }.
 * argv: send <memoryBytes> <mode> <batchPages> <init> [pkiDir] — allocates memory of random pages (a
 *   few zero; init `half-zero`: the first half all zero, a skewed round for the partition modes) and
 *   sends { type: 'ready' }.
 * in (both): { type: 'close' } → stops the channels (every worker ends) and sends { type: 'closed' },
 *   the process stays (to count its threads); { type: 'stop' } → the same, { type: 'stopped' }, and
 *   the process exits. A channel failure at any time sends { type: 'failed', code, message } (the
 *   channels stop themselves; the process stays, to be counted). `ready` and `listening` carry
 *   `threads`: the process's thread count just before any channel worker started.
 * env LIVEMIG_MULTIFD_PEER_HASH=0: the workers hash nothing (measuring what hashing costs; the
 *   digests are then meaningless).
 * in (recv): { type: 'expect', round } → { type: 'round', round, verdict, at } (at: this machine's
 *   clock, ms, when the barrier said the round was complete); { type: 'digest' } → { type: 'digest',
 *   hashes, memory } (the digest from the workers' page hashes, and digestMemory of the memory).
 * in (send): { type: 'connect', host, ports, token } → { type: 'attached' }; { type: 'round',
 *   round, pages?, parts? } (the first `pages` pages, default all, given to sendPages in `parts`
 *   parts, default 1, then endRound) → { type: 'sent', round, start, end, markers }; { type:
 *   'digest' } → { type: 'digest', hashes, memory }.
 */
import { randomFillSync } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type { MigrationError } from '@livemig/shared';
import { toMigrationError } from '@livemig/shared';
import { GuestMemory, digestMemory } from '@livemig/shared/vm';
import { tlsCredentials, SECURE_NAMES } from '../../cli/lab/secure.ts';
import {
  MultifdReceiver,
  MultifdSender,
  SharedPageHashes,
  type PartitionMode,
} from '../../shared/src/multifd/index.ts';

const [role, memoryArg = '0', third = '1', fourth, fifth, sixth] = process.argv.slice(2);
const bytes = Number(memoryArg);
const MIGRATION = 'multifd-peer';
const hashPages = process.env.LIVEMIG_MULTIFD_PEER_HASH !== '0';
const now = (): number => performance.timeOrigin + performance.now();

function tell(message: object): void {
  process.send?.(message);
}

function failed(error: MigrationError): void {
  tell({ type: 'failed', code: error.code, message: error.message });
}

const memory = GuestMemory.allocate(bytes);
const hashes = new SharedPageHashes(memory.pageCount);
let stop: () => Promise<void> = async () => {};

process.on('message', (message: { type: string }) => {
  if (message.type === 'close') void stop().then(() => tell({ type: 'closed' }));
  if (message.type !== 'stop') return;
  void stop().then(() => {
    tell({ type: 'stopped' });
    process.disconnect?.();
  });
});

/** This process's threads now (its main thread, libuv's and V8's, one per worker). */
function threads(): number {
  return readdirSync('/proc/self/task').length;
}

if (role === 'recv') {
  const pkiDir = fourth;
  for (let r = 0; r < memory.regions.length; r++) {
    const words = new Int32Array(memory.regions[r]!);
    for (let i = 0; i < words.length; i += 1024) words[i] = 0;
  }
  const tls = pkiDir ? await tlsCredentials(pkiDir, SECURE_NAMES.dest) : undefined;
  const before = threads();
  const receiver = await MultifdReceiver.listen({
    memory,
    hashes,
    host: '127.0.0.1',
    channels: Number(third),
    migrationId: MIGRATION,
    hashPages,
    ...(tls ? { tls, sourceName: SECURE_NAMES.source } : {}),
  });
  receiver.onFailure = failed;
  stop = () => receiver.stop();
  process.on('message', (message: { type: string; round?: number }) => {
    if (message.type === 'expect') {
      receiver.roundComplete(message.round!).then(
        (verdict) => tell({ type: 'round', round: message.round, verdict, at: now() }),
        (error: unknown) => failed(toMigrationError(error)),
      );
    } else if (message.type === 'digest') {
      void digestMemory(memory).then((digest) => tell({ type: 'digest', hashes: hashes.digest(), memory: digest }));
    }
  });
  tell({ type: 'listening', ports: receiver.ports, token: receiver.token, threads: before });
} else if (role === 'send') {
  const mode = third as PartitionMode;
  const batchPages = Number(fourth ?? 256);
  const halfZero = fifth === 'half-zero';
  const pkiDir = sixth;
  for (let r = 0; r < memory.regions.length; r++) {
    const region = memory.region(r);
    for (let at = 0; at < region.length; at += 256 * 1024 * 1024)
      randomFillSync(region.subarray(at, at + 256 * 1024 * 1024));
  }
  if (halfZero) {
    for (let page = 0; page < memory.pageCount / 2; page++) memory.page(page).fill(0);
  }
  memory.region(0).fill(0, 0, 16 * memory.pageSize); // a few zero pages travel as Zero
  const credentials = pkiDir ? await tlsCredentials(pkiDir, SECURE_NAMES.source) : undefined;
  let sender: MultifdSender | undefined;
  const all = Uint32Array.from({ length: memory.pageCount }, (_, i) => i);
  process.on(
    'message',
    (message: {
      type: string;
      host?: string;
      ports?: number[];
      token?: string;
      round?: number;
      pages?: number;
      parts?: number;
    }) => {
      if (message.type === 'connect') {
        MultifdSender.connect({
          memory,
          hashes,
          host: message.host!,
          ports: message.ports!,
          token: message.token!,
          migrationId: MIGRATION,
          hashPages,
          mode,
          batchPages,
          ...(credentials ? { tls: { ...credentials, expectName: SECURE_NAMES.dest } } : {}),
        }).then(
          (connected) => {
            sender = connected;
            connected.onFailure = failed;
            stop = () => connected.stop();
            tell({ type: 'attached' });
          },
          (error: unknown) => failed(toMigrationError(error)),
        );
      } else if (message.type === 'round') {
        const start = now();
        const round = message.round!;
        const pages = all.subarray(0, message.pages ?? all.length);
        const step = Math.max(1, Math.ceil(pages.length / (message.parts ?? 1)));
        try {
          for (let at = 0; at < pages.length; at += step) sender!.sendPages(round, pages.subarray(at, at + step));
        } catch (error) {
          failed(toMigrationError(error));
          return;
        }
        sender!.endRound(round, { stable: true }).then(
          (markers) => tell({ type: 'sent', round, start, end: now(), markers }),
          (error: unknown) => failed(toMigrationError(error)),
        );
      } else if (message.type === 'digest') {
        void digestMemory(memory).then((digest) => tell({ type: 'digest', hashes: hashes.digest(), memory: digest }));
      }
    },
  );
  tell({ type: 'ready', threads: threads() });
} else {
  throw new Error(`multifd-peer: unknown role ${role}`);
}
