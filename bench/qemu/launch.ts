/**
 * Start one `qemu-system-x86_64` (TCG, no KVM) for the QEMU benchmark and hand back a QMP client
 * to it.
 *
 * QMP without polling for a socket file: we listen on a unix socket first and QEMU connects to
 * it as a client (`-chardev socket,path=…` without server=on), so "QEMU is up" is the connection
 * arriving (or QEMU exiting, or a deadline). The guest has no disk: SeaBIOS runs, finds nothing
 * to boot and waits to retry, idle (a running, idle VM like livemig's S1 — see
 * bench/qemu.bench.ts for why not `-S`). Its debug port (0x402) goes to QEMU's stdout, so
 * `biosIdle()` waits for the "No bootable device" line instead of a guess.
 *
 * Guest RAM is one memory backend, id "mem" on both sides (the RAM block name the migration
 * stream matches): a file mapped privately (the guest starts with the file's bytes, writes stay
 * in the process) or anonymous memory; either optionally pre-allocated (`prealloc=on` touches
 * every page at start-up, before QMP answers).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { onExitCleanup } from './exit-cleanup.ts';
import { QmpClient, QmpError } from './qmp.ts';

/** The binary the benchmark drives. */
export const QEMU_BINARY = 'qemu-system-x86_64';

export type GuestRam =
  /** The guest's RAM is `path`, mapped copy-on-write (share=off): same bytes for every QEMU started on it. */
  | { kind: 'file'; path: string; prealloc: boolean }
  /** Anonymous memory (a destination); prealloc=on faults it all in at start-up. */
  | { kind: 'anonymous'; prealloc: boolean };

export interface QemuLaunchOptions {
  /** Directory for the QMP socket; the caller removes it. */
  dir: string;
  /** Names the socket and error messages, e.g. "source". */
  name: string;
  memoryBytes: number;
  ram: GuestRam;
  /** Start with `-incoming defer` (a destination, set up over QMP before migrate-incoming). @default false */
  incoming?: boolean;
  /** Deadline for QEMU to connect and negotiate QMP (prealloc of 1 GiB takes ~1 s here). @default 60000 */
  startTimeoutMs?: number;
  /** @default QEMU_BINARY */
  binary?: string;
}

export interface QemuProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly qmp: QmpClient;
  /** What QEMU wrote to stderr so far (its errors). */
  stderr(): string;
  /** Resolves when SeaBIOS has given up booting (the guest is idle); rejects on exit or deadline. */
  biosIdle(timeoutMs: number): Promise<void>;
  /** SIGKILL and wait for the exit; removes the socket. Safe to call twice. */
  stop(): Promise<void>;
}

/** Whether `binary` runs here: its version line, or why the benchmark must skip. */
export function qemuAvailable(binary = QEMU_BINARY): { ok: true; version: string } | { ok: false; reason: string } {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      ok: false,
      reason: missing
        ? `${binary} not found on PATH (Debian: apt-get install qemu-system-x86)`
        : `${binary} --version failed: ${r.error.message}`,
    };
  }
  if (r.status !== 0) return { ok: false, reason: `${binary} --version exited ${r.status}: ${r.stderr.trim()}` };
  return { ok: true, version: r.stdout.split('\n')[0]!.trim() };
}

/** The QEMU command line, without the binary. */
export function qemuArgs(
  options: Pick<QemuLaunchOptions, 'memoryBytes' | 'ram' | 'incoming'>,
  qmpPath: string,
): string[] {
  const size = `${options.memoryBytes}`;
  const prealloc = options.ram.prealloc ? 'on' : 'off';
  const backend =
    options.ram.kind === 'file'
      ? `memory-backend-file,id=mem,size=${size},mem-path=${options.ram.path},share=off,prealloc=${prealloc}`
      : `memory-backend-ram,id=mem,size=${size},prealloc=${prealloc}`;
  return [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-accel',
    'tcg',
    '-machine',
    'pc,memory-backend=mem',
    '-m',
    `${options.memoryBytes / 2 ** 20}M`,
    '-object',
    backend,
    '-chardev',
    `socket,id=qmp,path=${qmpPath}`,
    '-mon',
    'chardev=qmp,mode=control',
    '-chardev',
    'stdio,id=bios,signal=off',
    '-device',
    'isa-debugcon,iobase=0x402,chardev=bios',
    ...(options.incoming ? ['-incoming', 'defer'] : []),
  ];
}

/** Start QEMU and connect QMP; on any failure nothing is left running. */
export async function launchQemu(options: QemuLaunchOptions): Promise<QemuProcess> {
  const qmpPath = join(options.dir, `${options.name}.qmp.sock`);
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(qmpPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const child = spawn(options.binary ?? QEMU_BINARY, qemuArgs(options, qmpPath), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // 'close', not 'exit': by then stderr is fully read, so an error can quote all of it.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const forget = onExitCleanup(() => {
    child.kill('SIGKILL');
    rmSync(qmpPath, { force: true });
  });
  let errText = '';
  let biosText = '';
  child.stderr!.on('data', (chunk: Buffer) => (errText = (errText + chunk.toString()).slice(-16_384)));
  child.stdout!.on('data', (chunk: Buffer) => (biosText = (biosText + chunk.toString('latin1')).slice(-16_384)));
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      server.close();
      rmSync(qmpPath, { force: true });
      forget();
    })());

  const why = (what: string): string =>
    `${options.name} QEMU ${what}${spawnError ? `: ${spawnError.message}` : ''}${errText ? `\n${errText.trim()}` : ''}`;

  try {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new QmpError('QMP_TIMEOUT', why(`did not connect to QMP within ${timeoutMs} ms`))),
        timeoutMs,
      );
      server.once('connection', (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new QmpError('QMP_CONNECT', why(`exited (${signal ?? code}) before connecting to QMP`)));
      });
    });
    server.close(); // one client only; the connection stays open
    const qmp = await QmpClient.attach(socket, { timeoutMs });
    return {
      name: options.name,
      child,
      qmp,
      stderr: () => errText,
      stop: async () => {
        qmp.close();
        await stop();
      },
      biosIdle: (waitMs) =>
        new Promise<void>((resolve, reject) => {
          const done = (): boolean => /No bootable device/.test(biosText);
          if (done()) return resolve();
          if (child.exitCode !== null || child.signalCode !== null) {
            return reject(new QmpError('QMP_CLOSED', why('exited before the BIOS went idle')));
          }
          const onData = (): void => {
            if (!done()) return;
            finish();
            resolve();
          };
          const timer = setTimeout(() => {
            finish();
            reject(
              new QmpError(
                'QMP_TIMEOUT',
                why(`BIOS not idle within ${waitMs} ms; it printed: ${biosText.slice(-300)}`),
              ),
            );
          }, waitMs);
          const onExit = (): void => {
            finish();
            reject(new QmpError('QMP_CLOSED', why('exited while the BIOS ran')));
          };
          const finish = (): void => {
            clearTimeout(timer);
            child.stdout!.off('data', onData);
            child.off('exit', onExit);
          };
          // Registered after the text listener above, so `biosText` already holds this chunk.
          child.stdout!.on('data', onData);
          child.once('exit', onExit);
        }),
    };
  } catch (err) {
    // QEMU connects QMP before it checks the rest of its command line, so a bad option shows
    // here as QMP closing: if QEMU exits on its own within a moment, say so, with its stderr.
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      exited,
      new Promise<undefined>((resolve) => (timer = setTimeout(resolve, 2000, undefined))),
    ]);
    clearTimeout(timer);
    await stop();
    if (ended && err instanceof QmpError && err.code !== 'QMP_CONNECT') {
      throw new QmpError('QMP_CONNECT', why(`exited (${ended.signal ?? ended.code}) while starting`), { cause: err });
    }
    throw err;
  }
}
