/**
 * A command started ahead of time and held until it is needed: this module owns that child
 * process. arm() forks a shell now that waits for one line on its stdin; fire() sends the line
 * and the shell execs the command, so when it matters only an exec remains. Forking the agent
 * costs milliseconds per process on a loaded machine (tens with a large VM in memory), which is
 * too much inside a handoff — what clients see as downtime (macvlan.ts brings its link up so).
 *
 * An armed process never keeps the agent alive (it and its pipes are unref'd), and disarm()
 * kills it if it was not fired.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** How a fired command ended. */
export interface ArmedResult {
  /** Exit code; null if it was killed; -1 if the shell could not start. */
  code: number | null;
  /** What it wrote to stderr. */
  stderr: string;
}

/** One armed command: fire it once, or disarm it. */
export class ArmedCommand {
  readonly #child: ChildProcess;
  readonly #exited: Promise<ArmedResult>;
  #used = false;

  private constructor(argv: readonly [string, ...string[]]) {
    // "$@" is the command and its arguments exactly as given: no shell parsing of them.
    this.#child = spawn('sh', ['-c', 'read -r go && exec "$@"', 'sh', ...argv], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const child = this.#child;
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A shell that died before fire() makes the write fail (EPIPE): its exit says so instead.
    child.stdin!.on('error', () => {});
    this.#exited = new Promise<ArmedResult>((resolve) => {
      child.once('error', () => resolve({ code: -1, stderr: 'could not start sh' }));
      child.once('exit', (code) => resolve({ code, stderr }));
    });
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
  }

  /** Starts `argv` now, held until fire(). */
  static arm(argv: readonly [string, ...string[]]): ArmedCommand {
    return new ArmedCommand(argv);
  }

  /**
   * Runs the command and resolves with how it ended; undefined (nothing run) if the process is
   * no longer waiting — it died, was disarmed, or was fired already. The caller then runs the
   * command the ordinary way.
   */
  fire(): Promise<ArmedResult> | undefined {
    if (!this.waiting) return undefined;
    this.#used = true;
    this.#child.stdin!.end('go\n');
    return this.#exited;
  }

  /** True while fire() would run the command: not fired, not disarmed, the shell still waiting. */
  get waiting(): boolean {
    const child = this.#child;
    return !this.#used && child.exitCode === null && child.signalCode === null && child.stdin?.writable === true;
  }

  /** Kills the process (if it still runs); fire() does nothing afterwards. */
  disarm(): void {
    this.#used = true;
    this.#child.kill('SIGKILL');
  }
}
