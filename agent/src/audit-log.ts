/**
 * The agent's audit log on disk: append-only JSON lines in the format of
 * @livemig/shared/security audit.ts (hash-chained, each entry signed with the agent's key when
 * it has one). This file is the I/O: open (lock, find where the chain stands, say `open`),
 * append (one entry at a time, written and fsynced before the promise resolves), close.
 *
 * - One writer: a lock file (`FILE.lock`: the holder's pid and start time) keeps a second agent
 *   off the same log — two writers would each extend the chain from their own idea of its end.
 *   A lock whose process is gone (or whose pid was reused) is taken over.
 * - Durability: each entry is one write(2) of the whole line and an fdatasync before append()
 *   resolves, so what a command's reply says happened is on disk first; a new file's directory
 *   is fsynced once so the file itself survives a crash.
 * - Failure is sticky: once a write or fsync failed the log is `failed` and every later append
 *   rejects at once (ERR_AUDIT) — the daemon then refuses state-changing commands instead of
 *   running them unrecorded.
 * - A log whose last line is incomplete (a torn write) is not appended to: the agent refuses to
 *   start (ERR_AUDIT) and `livemig audit verify` names the line; move the file aside to go on.
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MigrationError } from '@livemig/shared';
import {
  chainAfter,
  sealEntry,
  type AuditBody,
  type AuditChain,
  type AuditEntry,
  type Signer,
} from '@livemig/shared/security';

export interface AuditLogOptions {
  /** The log file (created 0600, its directory 0700). */
  file: string;
  /** The name every entry carries: the agent's certificate name, or its agent id without one. */
  agent: string;
  /** Sign every entry with this key. @default none: entries are hash-chained only */
  signer?: Signer;
  /** The clock entries are stamped with. @default () => new Date() */
  now?: () => Date;
}

/** Bytes read from the end of a log at a time, looking for its last line. */
const TAIL_CHUNK = 64 * 1024;

export class AuditLog {
  readonly file: string;
  readonly #options: AuditLogOptions;
  readonly #fh: FileHandle;
  readonly #lock: string;
  #chain: AuditChain;
  #queue: Promise<unknown> = Promise.resolve();
  #failure: MigrationError | undefined;
  #closed = false;

  private constructor(options: AuditLogOptions, fh: FileHandle, lock: string, chain: AuditChain) {
    this.file = options.file;
    this.#options = options;
    this.#fh = fh;
    this.#lock = lock;
    this.#chain = chain;
  }

  /**
   * Open (or create) the log, take its lock and append an `open` entry carrying the signer's
   * certificate. Throws ERR_AUDIT: held by a live process, last line incomplete or no entry,
   * not writable.
   */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const { file } = options;
    const directory = dirname(file);
    await mkdir(directory, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
      throw auditError(`cannot create ${directory}`, error);
    });
    const lock = await takeLock(`${file}.lock`);
    try {
      const chain = chainAfter(await lastLine(file));
      const fh = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600).catch(
        (error: unknown) => {
          throw auditError(`cannot open ${file}`, error);
        },
      );
      if (chain.seq === 0) await syncDirectory(directory);
      const log = new AuditLog(options, fh, lock, chain);
      await log.append({ kind: 'open', certificate: options.signer?.certificate ?? null, pid: process.pid });
      return log;
    } catch (error) {
      await unlink(lock).catch(() => {});
      throw error;
    }
  }

  /** The error that stopped the log, if one did: nothing is appended after it. */
  get failure(): MigrationError | undefined {
    return this.#failure;
  }

  /** Entries so far (the last one's seq). */
  get entries(): number {
    return this.#chain.seq;
  }

  /** Append one entry; resolves once it is written and fsynced. Rejects with ERR_AUDIT. */
  append(body: AuditBody): Promise<AuditEntry> {
    const run = this.#queue.then(() => this.#write(body));
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Wait for pending appends, close the file and give up the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.#fh.close().catch(() => {});
    await unlink(this.#lock).catch(() => {});
  }

  async #write(body: AuditBody): Promise<AuditEntry> {
    if (this.#closed) throw new MigrationError('ERR_AUDIT', `the audit log ${this.file} is closed`);
    if (this.#failure) throw this.#failure;
    const { agent, signer, now } = this.#options;
    const sealed = sealEntry(this.#chain, { agent, at: now?.() ?? new Date(), body }, signer);
    try {
      const bytes = Buffer.from(`${sealed.line}\n`, 'utf8');
      let written = 0;
      while (written < bytes.length) written += (await this.#fh.write(bytes, written)).bytesWritten;
      await this.#fh.datasync();
    } catch (error) {
      this.#failure = auditError(`cannot write the audit log ${this.file}`, error);
      throw this.#failure;
    }
    this.#chain = sealed.chain;
    return sealed.entry;
  }
}

/** The last line of `file` (without its newline), undefined for a missing or empty file. */
async function lastLine(file: string): Promise<string | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw auditError(`cannot read ${file}`, error);
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) return undefined;
    for (let length = Math.min(size, TAIL_CHUNK); ; length = Math.min(size, length * 2)) {
      const tail = Buffer.alloc(length);
      await fh.read(tail, 0, length, size - length);
      if (tail[length - 1] !== 0x0a) {
        throw new MigrationError(
          'ERR_AUDIT',
          `the last line of the audit log ${file} is incomplete (a torn write): run \`livemig audit verify\` on it, ` +
            'and move it aside to start a new log',
        );
      }
      const start = tail.lastIndexOf(0x0a, length - 2);
      if (start >= 0 || length === size) return tail.subarray(start + 1, length - 1).toString('utf8');
    }
  } finally {
    await fh.close();
  }
}

/**
 * Create `lock` holding our pid and its start time; take over one whose process is gone (or
 * whose pid now belongs to another process: the start time differs). Throws ERR_AUDIT when held.
 */
async function takeLock(lock: string): Promise<string> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, `${process.pid} ${(await startTimeOf(process.pid)) ?? ''}\n`, { flag: 'wx', mode: 0o600 });
      return lock;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw auditError(`cannot create ${lock}`, error);
    }
    const [pidText = '', started = ''] = (await readFile(lock, 'utf8').catch(() => '')).trim().split(' ');
    const pid = Number.parseInt(pidText, 10);
    if (Number.isSafeInteger(pid) && pid > 0 && (await holds(pid, started))) {
      throw new MigrationError(
        'ERR_AUDIT',
        `the audit log is in use by process ${pid} (${lock}): one agent per log; give this one --state-dir or --audit-log`,
      );
    }
    await unlink(lock).catch(() => {});
  }
  throw new MigrationError('ERR_AUDIT', `cannot take the audit log's lock ${lock}`);
}

/** Is the process that wrote a lock (`pid`, started at `started`) still running? */
async function holds(pid: number, started: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = await startTimeOf(pid);
  return started === '' || now === undefined || now === started;
}

/** A process's start time (Linux: /proc/PID/stat field 22), to tell a reused pid apart; undefined elsewhere. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** fsync a directory, so a file just created in it survives a crash. */
async function syncDirectory(directory: string): Promise<void> {
  const fh = await open(directory, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function auditError(what: string, error: unknown): MigrationError {
  if (error instanceof MigrationError) return error;
  return new MigrationError('ERR_AUDIT', `${what}: ${(error as Error).message}`, { cause: error });
}
