/**
 * Last-resort cleanup for what the QEMU benchmark leaves on the machine (QEMU processes, unix
 * sockets, the guest-RAM file): registered actions run synchronously if this process exits or is
 * told to stop (SIGINT, SIGTERM, SIGHUP) while they are still registered. The normal paths undo
 * each thing themselves and unregister it; this only covers a crash or a signal mid-run, so a
 * killed benchmark does not leave 2 GiB of QEMU behind.
 *
 * The process and signal hooks are installed while at least one action is registered and removed
 * with the last one, so importing this changes nothing about how the process handles signals.
 */
const actions = new Set<() => void>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function runAll(): void {
  for (const action of [...actions]) {
    actions.delete(action);
    try {
      action();
    } catch {
      // Best effort on the way out: one failure must not stop the others.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  uninstall();
  // Die of the same signal, as if no handler had been there.
  process.kill(process.pid, signal);
}

function install(): void {
  process.on('exit', runAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  process.off('exit', runAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** Run `action` (synchronous) if the process exits before the returned function is called. */
export function onExitCleanup(action: () => void): () => void {
  if (actions.size === 0) install();
  actions.add(action);
  return () => {
    if (!actions.delete(action)) return;
    if (actions.size === 0) uninstall();
  };
}
