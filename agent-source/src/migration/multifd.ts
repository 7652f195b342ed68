/**
 * Parallel bulk channels (multifd, issue 18) for one outgoing migration: whether to ask for them,
 * connecting them once SetupDone named their ports, and ending a pre-copy round on every one of
 * them. The channels' workers (shared/src/multifd) read pages straight from guest memory and hash
 * them into the RAM section's page-hash table; this module only decides and counts.
 *
 * When: `multifd` negotiated, --channels N > 1, a mode with pre-copy rounds (a pure post-copy has
 * none), and an address to reach the destination's channels at (the main connection's host, with
 * the same TLS identity check). SetupDone without ports (a destination that could not listen for
 * them) leaves the migration on its one main connection.
 *
 * What travels where: pre-copy rounds deal raw and zero pages to the channels (page-sender.ts);
 * pages that a page encoding carries (deltas, references, compression), the stop-and-copy set and
 * post-copy stay on the main connection. A round ends with every channel's marker, then RoundEnd
 * on the main connection: the destination acknowledges the round only once its barrier says every
 * channel's share arrived whole. The next round starts only after that acknowledgement (precopy.ts),
 * so a page sent in two rounds on two channels can never land in the wrong order, and before the
 * VM pauses every channel is idle.
 */
import { MigrationError, toMigrationError } from '@livemig/shared';
import { MultifdSender } from '@livemig/shared/multifd';
import type { ChannelFigures, ChannelsReport } from '@livemig/shared/report';
import type { SetupDoneMsg } from '@livemig/shared/protocol';
import type { MigrationContext } from './context.ts';

/**
 * Pages dealt out and not yet written, per channel, at most: 1024 pages = 4 MiB, the channel
 * socket's write buffer — enough to keep every channel busy between two iterate() calls, little
 * enough that a bandwidth cap or a switch asked for mid-round is acted on within ~4 MiB a channel.
 */
export const WINDOW_PAGES_PER_CHANNEL = 1024;

/** Markers written on every channel: the last one's deadline (the window drains well within it). */
const END_ROUND_TIMEOUT_MS = 60_000;

/** The number of parallel channels to ask for in Setup, or undefined (the main connection only). */
export function channelsToAsk(ctx: MigrationContext): number | undefined {
  const asked = ctx.params.channels;
  if (asked < 2 || ctx.mode === 'postcopy' || !ctx.multifdTarget) return undefined;
  return ctx.channels.capabilities.has('multifd') ? asked : undefined;
}

/** How long a channel's failure waits for the main connection to say why (see channelFailureCause). */
const CAUSE_GRACE_MS = 250;

/**
 * What a migration failed of, when `caught` is a parallel channel's failure: a destination that
 * ends the migration (shutting down, a refusal, a digest) says why on the main connection and then
 * closes the channels, but a channel's close can reach this side first. So the main connection gets
 * CAUSE_GRACE_MS to fail with its reason, which is preferred; else the channel's error stands.
 * Anything else is returned as it is.
 */
export async function channelFailureCause(ctx: MigrationContext, caught: unknown): Promise<unknown> {
  const channelError = ctx.multifd?.error ?? starting.get(ctx)?.error;
  if (channelError === undefined || caught !== channelError) return caught;
  const deadline = performance.now() + CAUSE_GRACE_MS;
  for (;;) {
    let main: MigrationError | undefined;
    try {
      main = ctx.channels.main.failure;
    } catch {
      return caught; // no main connection any more: nothing to say more
    }
    if (main) return main;
    if (performance.now() >= deadline) return caught;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A connect that found nobody there, or nothing within its deadline (not a refusal by the destination). */
function unreachable(error: MigrationError): boolean {
  return /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|connecting took longer/.test(error.message);
}

/** Why no parallel channels were asked for although --channels asked for more than one. */
function notAskedWhy(ctx: MigrationContext): string | undefined {
  if (ctx.params.channels < 2) return undefined;
  if (ctx.mode === 'postcopy') return 'a pure post-copy has no pre-copy rounds';
  if (!ctx.multifdTarget) return 'this migration has no address for them';
  return 'the destination did not negotiate multifd';
}

/** Channel workers started beside Setup and not attached yet (or never to be). */
const starting = new WeakMap<MigrationContext, MultifdSender>();

/**
 * Setup asks for `asked` channels: start their workers now, beside Setup — a worker's start-up (a
 * V8 isolate and its modules) takes hundreds of ms on a busy machine, which the destination's
 * building of the VM then hides. They connect once SetupDone names the ports (openMultifd).
 */
export function startMultifd(ctx: MigrationContext, asked: number | undefined): void {
  const target = ctx.multifdTarget;
  if (asked === undefined || !target) return;
  starting.set(
    ctx,
    MultifdSender.start({
      channels: asked,
      memory: ctx.vm.memory,
      hashes: ctx.s.ram.pageHashes(),
      host: target.host,
      migrationId: ctx.id,
      ...(target.tls ? { tls: target.tls } : {}),
    }),
  );
}

/** End every channel worker of the migration, attached or only started. Never throws. */
export async function stopMultifd(ctx: MigrationContext): Promise<void> {
  await Promise.all([ctx.multifd?.stop(), starting.get(ctx)?.stop()]);
}

/**
 * SetupDone came: connect the channels it named (all of them attach, or the migration fails here,
 * before any page was sent), or go on with the main connection when it named none.
 */
export async function openMultifd(ctx: MigrationContext, asked: number | undefined, done: SetupDoneMsg): Promise<void> {
  const target = ctx.multifdTarget;
  const sender = starting.get(ctx);
  if (asked === undefined || !target || !sender) {
    ctx.multifdNote = notAskedWhy(ctx);
    return;
  }
  const { multifdPorts: ports, multifdToken: token } = done;
  if (ports === undefined || token === undefined) {
    void sender.stop();
    ctx.multifdNote = 'the destination named no parallel channels (it could not listen for them)';
    ctx.logger.warn(
      { event: 'multifd.declined', asked },
      `the destination named no parallel channels: ${asked} asked, the main connection carries every page`,
    );
    return;
  }
  if (ports.length !== asked) {
    throw new MigrationError(
      'ERR_BAD_METADATA',
      `SetupDone named ${ports.length} multifd ports, ${asked} were asked for`,
    );
  }
  const started = performance.now();
  try {
    await sender.attach(ports, token);
  } catch (caught) {
    // The ports cannot be reached (a firewall, a relay that stands in for the main port only):
    // one connection, as with a peer without multifd. The destination, seeing no channel attach
    // before the first round ends, stops waiting for them. Anything else — a channel refused by
    // the destination — fails the migration here, before any page was sent.
    const error = toMigrationError(caught);
    if (ctx.signal.aborted || !unreachable(error)) throw error;
    ctx.multifdNote = `the destination's channel ports could not be reached (${error.message})`;
    ctx.logger.warn({ event: 'multifd.unreachable', err: error }, 'parallel channels unreachable: one channel');
    return;
  }
  // A channel failing while rounds still use them fails the migration at once (the VM runs on
  // here), not at the next page dealt out. After the last round the destination closes them.
  sender.onFailure = (error) => {
    void channelFailureCause(ctx, error).then((cause) => {
      if ((ctx.machine.state === 'setup' || ctx.machine.state === 'precopy') && !ctx.signal.aborted) {
        ctx.abort.abort(cause);
      }
    });
  };
  starting.delete(ctx);
  ctx.multifd = sender;
  ctx.multifdCounted = sender.totals;
  ctx.channels.countWireOf(() => sender.wireBytes);
  ctx.s.ram.useMultifd(sender, WINDOW_PAGES_PER_CHANNEL * sender.channels);
  ctx.logger.info(
    { event: 'multifd.attached', channels: sender.channels, ms: performance.now() - started },
    `${sender.channels} parallel channels attached`,
  );
}

/**
 * Round `round` is all dealt out: every channel writes its marker; then what the channels wrote
 * this round joins the migration's page counts (the report and the record count every page once).
 */
export async function endMultifdRound(ctx: MigrationContext, round: number): Promise<void> {
  const sender = ctx.multifd;
  if (!sender) return;
  await sender.endRound(round, { timeoutMs: END_ROUND_TIMEOUT_MS });
  const now = sender.totals;
  const before = ctx.multifdCounted;
  const { stats } = ctx;
  const pageSize = ctx.vm.memory.pageSize;
  now.forEach((t, i) => {
    const pages = t.pages - (before[i]?.pages ?? 0);
    const bytes = t.bytes - (before[i]?.bytes ?? 0);
    stats.rawPages += bytes / pageSize;
    stats.zeroPages += pages - bytes / pageSize;
    stats.pagePayloadBytes += bytes;
  });
  ctx.multifdCounted = now;
}

/** The report's channels: what each bulk channel carried (the parallel ones, or the main connection alone). */
export function channelsReport(ctx: MigrationContext): ChannelsReport {
  const { stats } = ctx;
  const all: ChannelFigures = {
    pages: stats.rawPages + stats.zeroPages,
    bytes: stats.pagePayloadBytes,
    wireBytes: ctx.channels.wireBytes,
  };
  const asked = ctx.params.channels;
  const sender = ctx.multifd;
  if (!sender) {
    const note = asked > 1 ? (ctx.multifdNote ?? 'parallel channels were not set up') : undefined;
    return { asked, count: 1, ...(note ? { note } : {}), perChannel: [all] };
  }
  // Counted in stats at each round's end: figures of a round cut short by a failure are the workers' own.
  const perChannel = sender.totals.map((t) => ({ pages: t.pages, bytes: t.bytes, wireBytes: t.wire }));
  const sum = (key: keyof ChannelFigures): number => perChannel.reduce((total, f) => total + f[key], 0);
  const counted = (key: 'pages' | 'bytes'): number => ctx.multifdCounted.reduce((total, t) => total + t[key], 0);
  return {
    asked,
    count: perChannel.length,
    perChannel,
    main: {
      pages: Math.max(0, all.pages - counted('pages')),
      bytes: Math.max(0, all.bytes - counted('bytes')),
      wireBytes: Math.max(0, all.wireBytes - sum('wireBytes')),
    },
  };
}
