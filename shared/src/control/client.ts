/**
 * The client side of the control channel (used by the CLI and the tests): typed requests that
 * resolve with the agent's `return` or reject with its MigrationError, and an event stream.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { MigrationError, ERROR_CODES, type ErrorCode } from '../errors.ts';
import type { CommandArgs, CommandName, CommandResult, ControlEvent, ControlEvents, EventName } from './messages.ts';

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: MigrationError) => void;
}

export class ControlClient {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #events = new EventEmitter();
  #nextId = 1;
  #closedError: MigrationError | undefined;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on('message', (data) => this.#onMessage(data.toString()));
    socket.on('close', () => this.#failAll(new MigrationError('ERR_CONNECTION', 'control connection closed')));
    socket.on('error', (error) => this.#failAll(new MigrationError('ERR_CONNECTION', error.message, { cause: error })));
  }

  /** Connect to an agent's control URL, e.g. "ws://127.0.0.1:7171" (a bare "host:port" works too). */
  static connect(url: string, timeoutMs = 5000): Promise<ControlClient> {
    const target = /^wss?:\/\//.test(url) ? url : `ws://${url}`;
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(target, { handshakeTimeout: timeoutMs });
      socket.once('open', () => resolve(new ControlClient(socket)));
      socket.once('error', (error) =>
        reject(new MigrationError('ERR_CONNECTION', `cannot reach agent at ${target}: ${error.message}`)),
      );
    });
  }

  /** Send a command and wait for its answer. */
  request<C extends CommandName>(command: C, args: CommandArgs<C>): Promise<CommandResult<C>> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    return new Promise<CommandResult<C>>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#socket.send(JSON.stringify({ id, command, args }));
    });
  }

  /** Subscribe to an agent event. Returns the unsubscribe function. */
  on<E extends EventName>(event: E, listener: (data: ControlEvents[E], timestamp: number) => void): () => void {
    const wrapped = (message: ControlEvent): void => listener(message.data as ControlEvents[E], message.timestamp);
    this.#events.on(event, wrapped);
    return () => this.#events.off(event, wrapped);
  }

  close(): void {
    this.#socket.close();
  }

  #onMessage(text: string): void {
    let message: { id?: number; return?: unknown; error?: { code: string; message: string }; event?: string };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    if (typeof message.event === 'string') {
      this.#events.emit(message.event, message as ControlEvent);
      return;
    }
    if (typeof message.id !== 'number') return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if (message.error) {
      const code = (message.error.code in ERROR_CODES ? message.error.code : 'ERR_CONTROL') as ErrorCode;
      pending.reject(new MigrationError(code, message.error.message));
    } else {
      pending.resolve(message.return);
    }
  }

  #failAll(error: MigrationError): void {
    this.#closedError ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
