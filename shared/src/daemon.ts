/**
 * The lifecycle both daemons share: start, announce readiness with ONE JSON line on stdout
 * (`{"event":"ready",…}` — so scripts and tests can start a daemon on port 0 and learn the
 * ports it bound), then run until SIGTERM/SIGINT, when `stop()` gets to finish its work
 * (e.g. leave a VM that is mid-migration running on exactly one side). A second signal exits
 * at once.
 */
import type { Logger } from 'pino';

export interface RunningDaemon {
  /** Merged into the ready line, e.g. { control: 'ws://127.0.0.1:7171' }. */
  ready: Record<string, unknown>;
  stop(reason: string): Promise<void>;
}

export async function runDaemon(logger: Logger, start: () => Promise<RunningDaemon>): Promise<void> {
  const daemon = await start();
  process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid, ...daemon.ready }) + '\n');
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    daemon.stop(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
