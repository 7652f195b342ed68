/**
 * A small QMP (QEMU Machine Protocol) client for the QEMU benchmark: JSON objects, one per line,
 * over a unix socket.
 *
 * Flow: QEMU connects to (or is connected to on) a unix socket and sends a greeting
 * (`{"QMP": {...}}`); the client answers `qmp_capabilities` to leave negotiation mode; then each
 * command `{"execute", "arguments", "id"}` gets exactly one `{"return", "id"}` or
 * `{"error": {"class", "desc"}, "id"}`, and asynchronous `{"event", "data", "timestamp"}` lines
 * may arrive at any point, also between a command and its answer.
 *
 * The pure part (QmpLineParser, parseQmpMessage) turns bytes into typed messages with bounded
 * buffering; QmpClient matches answers to commands by id, keeps events in a bounded backlog so an
 * event that arrives before anyone waits for it is not lost, and puts a deadline on every wait.
 * The peer is a local QEMU we started, but its bytes are still checked: a line too long or not a
 * QMP object fails the connection with a typed error instead of growing a buffer.
 */
import { connect, type Socket } from 'node:net';

/** Why a QMP operation failed; callers match on `code`. */
export type QmpErrorCode =
  /** The socket could not be connected or failed. */
  | 'QMP_CONNECT'
  /** A wait (greeting, answer, event) passed its deadline. */
  | 'QMP_TIMEOUT'
  /** The connection closed with commands or waits outstanding. */
  | 'QMP_CLOSED'
  /** The peer sent something that is not QMP (bad JSON, unknown shape, line too long). */
  | 'QMP_PROTOCOL'
  /** QEMU answered a command with an error object. */
  | 'QMP_COMMAND';

export class QmpError extends Error {
  override readonly name = 'QmpError';
  readonly code: QmpErrorCode;
  /** For QMP_COMMAND: QEMU's error class, e.g. "GenericError". */
  readonly errorClass?: string;

  constructor(code: QmpErrorCode, message: string, options?: { cause?: unknown; errorClass?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options?.errorClass !== undefined) this.errorClass = options.errorClass;
  }
}

/** A JSON object as QEMU sends it. */
export type JsonObject = { [key: string]: unknown };

/** One message from QEMU, classified. */
export type QmpMessage =
  | { kind: 'greeting'; version: JsonObject; capabilities: unknown[] }
  | { kind: 'return'; id: string | undefined; value: unknown }
  | { kind: 'error'; id: string | undefined; errorClass: string; desc: string }
  | { kind: 'event'; event: string; data: JsonObject; timestamp: { seconds: number; microseconds: number } };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
// Our own ids are strings; QEMU echoes any JSON value, so anything else is not one of ours.
const idOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Classify one line of QMP. Throws QMP_PROTOCOL for anything that is not a QMP message. */
export function parseQmpMessage(line: string): QmpMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new QmpError('QMP_PROTOCOL', `QMP: not JSON: ${line.slice(0, 120)}`, { cause: err });
  }
  if (!isObject(value)) throw new QmpError('QMP_PROTOCOL', `QMP: not an object: ${line.slice(0, 120)}`);
  if (isObject(value.QMP)) {
    const qmp = value.QMP;
    return {
      kind: 'greeting',
      version: isObject(qmp.version) ? qmp.version : {},
      capabilities: Array.isArray(qmp.capabilities) ? qmp.capabilities : [],
    };
  }
  if ('return' in value) return { kind: 'return', id: idOf(value.id), value: value.return };
  if (isObject(value.error)) {
    const { class: errorClass, desc } = value.error;
    return {
      kind: 'error',
      id: idOf(value.id),
      errorClass: typeof errorClass === 'string' ? errorClass : 'unknown',
      desc: typeof desc === 'string' ? desc : JSON.stringify(value.error),
    };
  }
  if (typeof value.event === 'string') {
    const ts = isObject(value.timestamp) ? value.timestamp : {};
    return {
      kind: 'event',
      event: value.event,
      data: isObject(value.data) ? value.data : {},
      timestamp: { seconds: Number(ts.seconds ?? NaN), microseconds: Number(ts.microseconds ?? NaN) },
    };
  }
  throw new QmpError('QMP_PROTOCOL', `QMP: unknown message: ${line.slice(0, 120)}`);
}

/** Splits a byte stream into QMP messages; buffers at most `maxLineBytes` of an unfinished line. */
export class QmpLineParser {
  #pending = '';
  readonly maxLineBytes: number;

  /** @param maxLineBytes longest line accepted. @default 1 MiB (query-migrate answers are < 2 KiB) */
  constructor(maxLineBytes = 1 << 20) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Feed bytes; returns the complete messages they finish, in order. Throws QMP_PROTOCOL. */
  push(chunk: string | Buffer): QmpMessage[] {
    // QMP is ASCII JSON (QEMU escapes everything else), so a chunk boundary cannot split a
    // character that matters; latin1 keeps every byte as one char and never throws.
    this.#pending += typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    const out: QmpMessage[] = [];
    let start = 0;
    for (let nl = this.#pending.indexOf('\n'); nl !== -1; nl = this.#pending.indexOf('\n', start)) {
      const line = this.#pending.slice(start, nl).trim();
      start = nl + 1;
      if (line.length > this.maxLineBytes) throw new QmpError('QMP_PROTOCOL', `QMP: line of ${line.length} bytes`);
      if (line) out.push(parseQmpMessage(line));
    }
    this.#pending = this.#pending.slice(start);
    if (this.#pending.length > this.maxLineBytes) {
      throw new QmpError('QMP_PROTOCOL', `QMP: more than ${this.maxLineBytes} bytes without a newline`);
    }
    return out;
  }
}

/** An event as kept in the backlog. */
export type QmpEvent = Extract<QmpMessage, { kind: 'event' }>;

export interface QmpClientOptions {
  /** Deadline for a command's answer unless execute() gives one. @default 10000 */
  commandTimeoutMs?: number;
  /** Events kept for later waiters; the oldest are dropped beyond this. @default 1000 */
  maxBacklog?: number;
}

interface Waiter {
  resolve(value: unknown): void;
  reject(err: QmpError): void;
  timer: NodeJS.Timeout;
}

interface EventWaiter extends Waiter {
  match(e: QmpEvent): boolean;
}

/** A QMP connection past negotiation: execute commands, wait for events. */
export class QmpClient {
  readonly greeting: Extract<QmpMessage, { kind: 'greeting' }>;
  readonly #socket: Socket;
  readonly #parser: QmpLineParser;
  readonly #answers = new Map<string, Waiter>();
  readonly #eventWaiters = new Set<EventWaiter>();
  readonly #backlog: QmpEvent[] = [];
  readonly #commandTimeoutMs: number;
  readonly #maxBacklog: number;
  #nextId = 1;
  #failure: QmpError | undefined;

  private constructor(
    socket: Socket,
    parser: QmpLineParser,
    greeting: QmpClient['greeting'],
    options: QmpClientOptions,
  ) {
    this.#socket = socket;
    this.#parser = parser;
    this.greeting = greeting;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 10_000;
    this.#maxBacklog = options.maxBacklog ?? 1000;
  }

  /** Connect to QEMU's QMP unix socket, read its greeting and negotiate capabilities. */
  static async connect(path: string, options: QmpClientOptions & { timeoutMs?: number } = {}): Promise<QmpClient> {
    const socket = connect(path);
    return QmpClient.attach(socket, options);
  }

  /**
   * Take over a socket QEMU is on (e.g. one QEMU connected to our server, see launch.ts): wait
   * for the greeting and negotiate capabilities, all within `timeoutMs` (default 10000).
   */
  static async attach(socket: Socket, options: QmpClientOptions & { timeoutMs?: number } = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const parser = new QmpLineParser();
    let rest: QmpMessage[] = [];
    const greeting = await new Promise<QmpClient['greeting']>((resolve, reject) => {
      const fail = (err: QmpError): void => {
        cleanup();
        socket.destroy();
        reject(err);
      };
      const onData = (chunk: Buffer): void => {
        let messages: QmpMessage[];
        try {
          messages = parser.push(chunk);
        } catch (err) {
          fail(err as QmpError);
          return;
        }
        const [first, ...more] = messages;
        if (!first) return;
        if (first.kind !== 'greeting') {
          fail(new QmpError('QMP_PROTOCOL', `QMP: expected a greeting, got ${first.kind}`));
          return;
        }
        cleanup();
        rest = more;
        resolve(first);
      };
      const onError = (err: Error): void => fail(new QmpError('QMP_CONNECT', `QMP: ${err.message}`, { cause: err }));
      const onClose = (): void => fail(new QmpError('QMP_CLOSED', 'QMP: closed before the greeting'));
      const timer = setTimeout(
        () => fail(new QmpError('QMP_TIMEOUT', `QMP: no greeting within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
    });
    // The same parser goes on: it may hold the start of the line after the greeting.
    const client = new QmpClient(socket, parser, greeting, options);
    client.#start(rest);
    try {
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  #start(early: QmpMessage[]): void {
    for (const m of early) this.#dispatch(m);
    this.#socket.on('data', (chunk: Buffer) => {
      if (this.#failure) return;
      let messages: QmpMessage[];
      try {
        messages = this.#parser.push(chunk);
      } catch (err) {
        this.#fail(err as QmpError);
        this.#socket.destroy();
        return;
      }
      for (const m of messages) this.#dispatch(m);
    });
    this.#socket.on('error', (err) => this.#fail(new QmpError('QMP_CONNECT', `QMP: ${err.message}`, { cause: err })));
    this.#socket.on('close', () => this.#fail(new QmpError('QMP_CLOSED', 'QMP: connection closed')));
  }

  #dispatch(m: QmpMessage): void {
    switch (m.kind) {
      case 'event':
        for (const w of this.#eventWaiters) {
          if (w.match(m)) {
            this.#eventWaiters.delete(w);
            clearTimeout(w.timer);
            w.resolve(m);
            return; // consumed by its waiter
          }
        }
        this.#backlog.push(m);
        if (this.#backlog.length > this.#maxBacklog) this.#backlog.shift();
        return;
      case 'return':
      case 'error': {
        const waiter = m.id === undefined ? undefined : this.#answers.get(m.id);
        if (!waiter) {
          this.#fail(new QmpError('QMP_PROTOCOL', `QMP: answer to no outstanding command (id ${m.id})`));
          this.#socket.destroy();
          return;
        }
        this.#answers.delete(m.id!);
        clearTimeout(waiter.timer);
        if (m.kind === 'return') waiter.resolve(m.value);
        else waiter.reject(new QmpError('QMP_COMMAND', `QMP: ${m.desc}`, { errorClass: m.errorClass }));
        return;
      }
      case 'greeting':
        this.#fail(new QmpError('QMP_PROTOCOL', 'QMP: a second greeting'));
        this.#socket.destroy();
    }
  }

  /** First error wins: every outstanding wait is rejected with it, later calls fail with it. */
  #fail(err: QmpError): void {
    if (this.#failure) return;
    this.#failure = err;
    for (const w of this.#answers.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.#answers.clear();
    for (const w of this.#eventWaiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.#eventWaiters.clear();
  }

  /** Run a command; resolves with its `return` value, rejects QMP_COMMAND / QMP_TIMEOUT / QMP_CLOSED. */
  execute<T = unknown>(command: string, args?: JsonObject, options: { timeoutMs?: number } = {}): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = `lm-${this.#nextId++}`;
    const timeoutMs = options.timeoutMs ?? this.#commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#answers.delete(id);
        reject(new QmpError('QMP_TIMEOUT', `QMP: ${command} not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#answers.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#socket.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  /**
   * The first event named `name` (and matching `where`, if given) not yet taken, from the backlog
   * or the next to arrive within `timeoutMs`. Each event is handed to one waiter only.
   */
  waitForEvent(name: string, timeoutMs: number, where?: (data: JsonObject) => boolean): Promise<QmpEvent> {
    const match = (e: QmpEvent): boolean => e.event === name && (!where || where(e.data));
    const at = this.#backlog.findIndex(match);
    if (at !== -1) return Promise.resolve(this.#backlog.splice(at, 1)[0]!);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<QmpEvent>((resolve, reject) => {
      const waiter: EventWaiter = {
        match,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => {
          this.#eventWaiters.delete(waiter);
          reject(new QmpError('QMP_TIMEOUT', `QMP: no ${name} event within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#eventWaiters.add(waiter);
    });
  }

  /** Events received and not taken by a waiter, oldest first (a copy). */
  get backlog(): readonly QmpEvent[] {
    return [...this.#backlog];
  }

  /** Close the connection; outstanding waits reject with QMP_CLOSED. */
  close(): void {
    this.#fail(new QmpError('QMP_CLOSED', 'QMP: closed by us'));
    this.#socket.destroy();
  }
}
