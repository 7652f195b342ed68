/**
 * The dashboard's one control connection to the agent it follows, kept up for as long as the
 * dashboard runs, and everything it learns turned into model inputs (model.ts):
 *
 *   loop:  connect ──fail──▶ unreachable(why, next try) ─ wait backoff(attempt) ─▶ connect
 *            │ ok
 *            ▼
 *          connected: subscribe to MIGRATION, MIGRATION_PASS, MIGRATION_REPORT
 *                     ask query-migrate {} (a migration that started before we came)
 *                     every pollMs, and at once on an event: query-migrate {id} for each
 *                     migration in flight, query-report for each that ended without one
 *            │ the connection ends, or a request goes unanswered past its deadline
 *            ▼
 *          unreachable ─ wait ─▶ connect …   (stop() ends the loop wherever it is)
 *
 * Polls do not overlap: the next one is timed from the end of the last. Every request has a
 * deadline (requestTimeoutMs); an agent that stops answering is treated as gone — the connection
 * is closed and made again — rather than waited on for ever. A request the agent refuses
 * (ERR_FORBIDDEN, ERR_RATE_LIMITED, …) is shown and the connection kept.
 *
 * This is the I/O half; what the inputs mean is the model's business.
 */
import { isMigrationError, MigrationError } from '@livemig/shared';
import type { CommandArgs, CommandName, CommandResult, ControlClient } from '@livemig/shared/control';
import { backoffMs } from './backoff.ts';
import { inFlight, wantsReport, type DashboardInput, type DashboardModel } from './model.ts';

/** Migrations polled per round at most (the rest wait: a flood of migrations does not multiply requests). */
export const MAX_POLLED = 8;
/** A connection that lasted this long was a good one: the next failure starts the backoff afresh. */
const STABLE_MS = 5000;
/** Ids and names longer than this are not an agent's (a UUID is 36 characters). */
const MAX_NAME = 256;

export interface AgentFollowerOptions {
  /** Open a control connection (connectControl with the command's flags). */
  connect: () => Promise<ControlClient>;
  /** Feed the model. */
  dispatch: (input: DashboardInput) => void;
  /** The model as it is now: which migrations to poll. */
  model: () => DashboardModel;
  /** Between polls while a migration runs. */
  pollMs: number;
  /** How long a request may go unanswered. @default 5000 */
  requestTimeoutMs?: number;
  /** The wait before reconnect attempt `attempt`. @default backoffMs with Math.random */
  backoff?: (attempt: number) => number;
  /** The dashboard's clock. @default Date.now */
  now?: () => number;
}

export class AgentFollower {
  readonly #o: AgentFollowerOptions;
  readonly #stop = new AbortController();
  /** Reports asked for already (query-report answers null for an incoming migration: ask once). */
  readonly #reportsAsked = new Set<string>();
  #running: Promise<void> | undefined;

  constructor(options: AgentFollowerOptions) {
    this.#o = options;
  }

  /** Start following; runs until stop(). */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Stop: close the connection, end any wait; resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.#stop.abort(new MigrationError('ERR_CANCELLED', 'the dashboard is stopping'));
    await this.#running;
  }

  get #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let attempt = 0;
    while (!signal.aborted) {
      this.#o.dispatch({ type: 'connecting', at: this.#now });
      let why: string;
      try {
        const client = await untilAborted(this.#o.connect(), signal);
        const since = performance.now();
        why = await this.#follow(client);
        if (performance.now() - since >= STABLE_MS) attempt = 0;
      } catch (error) {
        why = describe(error);
      }
      if (signal.aborted) break;
      const waitMs = (this.#o.backoff ?? ((n) => backoffMs(n, Math.random())))(attempt++);
      this.#o.dispatch({ type: 'unreachable', at: this.#now, error: why, retryAt: this.#now + waitMs });
      await sleep(waitMs, signal);
    }
  }

  /** Follow the agent on `client` until the connection ends (or stop()); why it ended. */
  async #follow(client: ControlClient): Promise<string> {
    const connection = new AbortController();
    if (this.#stop.signal.aborted) connection.abort(this.#stop.signal.reason);
    const stop = (): void => connection.abort(this.#stop.signal.reason);
    this.#stop.signal.addEventListener('abort', stop, { once: true });
    const ended = new Promise<string>((resolve) => {
      if (connection.signal.aborted) resolve(describe(connection.signal.reason));
      client.onClose((error) => resolve(describe(error)));
      connection.signal.addEventListener('abort', () => resolve(describe(connection.signal.reason)), { once: true });
    });
    // A poke (an event) during a poll makes the next poll start at once, without the pause.
    let poked = false;
    let wake = (): void => {};
    const poke = (): void => {
      poked = true;
      wake();
    };
    const dispatch = (input: DashboardInput): void => {
      if (!connection.signal.aborted) this.#o.dispatch(input);
    };
    const unsubscribe = [
      client.on('MIGRATION', (data) => {
        if (!plausible(data.migrationId) || typeof data.status !== 'string' || data.status.length > MAX_NAME) return;
        dispatch({ type: 'event', at: this.#now, event: 'MIGRATION', data: { ...data, vm: name(data.vm) } });
        poke();
      }),
      client.on('MIGRATION_PASS', (data) => {
        if (!plausible(data.migrationId) || !Number.isSafeInteger(data.pass)) return;
        dispatch({ type: 'event', at: this.#now, event: 'MIGRATION_PASS', data });
        // A round just ended: poll now, so the next round's start is seen within a round trip.
        poke();
      }),
      client.on('MIGRATION_REPORT', (data) => {
        if (!plausible(data.migrationId) || typeof data.report !== 'object' || data.report === null) return;
        dispatch({ type: 'event', at: this.#now, event: 'MIGRATION_REPORT', data });
      }),
    ];
    this.#o.dispatch({ type: 'connected', at: this.#now, agentName: client.agentName });
    const polling = (async () => {
      // A migration that started before we connected: the newest in progress, else the last.
      const first = await this.#tolerant(this.#ask(client, 'query-migrate', {}), dispatch);
      if (first) dispatch({ type: 'migration-info', at: this.#now, info: first });
      while (!connection.signal.aborted) {
        poked = false;
        await this.#pollOnce(client, dispatch);
        if (poked || connection.signal.aborted) continue;
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            connection.signal.removeEventListener('abort', done);
            wake = () => {};
            resolve();
          };
          const timer = setTimeout(done, this.#o.pollMs);
          wake = done;
          connection.signal.addEventListener('abort', done, { once: true });
        });
      }
    })();
    // A request past its deadline, or a connection gone mid-request, ends this connection.
    polling.catch((error: unknown) => connection.abort(error));
    const why = await ended;
    connection.abort(new MigrationError('ERR_CONNECTION', why));
    this.#stop.signal.removeEventListener('abort', stop);
    for (const off of unsubscribe) off();
    client.close();
    await polling.catch(() => {});
    return why;
  }

  /** One round of polls: the migrations in flight, then the reports still missing. */
  async #pollOnce(client: ControlClient, dispatch: (input: DashboardInput) => void): Promise<void> {
    for (const migrationId of inFlight(this.#o.model()).slice(0, MAX_POLLED)) {
      const info = await this.#tolerant(this.#ask(client, 'query-migrate', { migrationId }), dispatch);
      if (info === null) dispatch({ type: 'migration-gone', at: this.#now, migrationId });
      else if (info !== undefined) dispatch({ type: 'migration-info', at: this.#now, info });
    }
    for (const m of this.#o.model().migrations) {
      if (!wantsReport(this.#o.model(), m.migrationId) || this.#reportsAsked.has(m.migrationId)) continue;
      const report = await this.#tolerant(this.#ask(client, 'query-report', { migrationId: m.migrationId }), dispatch);
      // Answered (a report, none, or a refusal): not asked again. Bounded like the model: ids it
      // forgot need not be remembered here either.
      if (this.#reportsAsked.size >= 1024) this.#reportsAsked.clear();
      this.#reportsAsked.add(m.migrationId);
      if (report) dispatch({ type: 'report', at: this.#now, report });
    }
  }

  /**
   * The answer; null when the agent does not know the migration; undefined when it refused the
   * request for another reason (shown on the page). A lost connection or a missed deadline throws.
   */
  async #tolerant<T>(
    request: Promise<T | null>,
    dispatch: (input: DashboardInput) => void,
  ): Promise<T | null | undefined> {
    try {
      return await request;
    } catch (error) {
      if (isMigrationError(error) && error.code === 'ERR_NOT_FOUND') return null;
      if (isMigrationError(error) && (error.code === 'ERR_CONNECTION' || error.code === 'ERR_TIMEOUT')) throw error;
      dispatch({ type: 'request-failed', at: this.#now, error: describe(error) });
      return undefined;
    }
  }

  /** A request with a deadline: ERR_TIMEOUT when the agent has not answered in time. */
  async #ask<C extends CommandName>(
    client: ControlClient,
    command: C,
    args: CommandArgs<C>,
  ): Promise<CommandResult<C>> {
    const timeoutMs = this.#o.requestTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new MigrationError('ERR_TIMEOUT', `the agent did not answer ${command} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([client.request(command, args), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** "ERR_CODE: message" for a coded error, else the message. */
function describe(error: unknown): string {
  if (isMigrationError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

function plausible(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_NAME;
}

function name(value: unknown): string {
  return typeof value === 'string' && value.length <= MAX_NAME ? value : '';
}

/**
 * `promise`, or a rejection with the signal's reason as soon as it aborts; a connection that
 * opens after that is closed at once.
 */
function untilAborted(promise: Promise<ControlClient>, signal: AbortSignal): Promise<ControlClient> {
  promise.then(
    (client) => signal.aborted && client.close(),
    () => {},
  );
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
