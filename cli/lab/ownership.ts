/**
 * Whose lab is whose (issue 14). Every namespace a lab creates is marked, right after
 * `ip netns add`, with the alias of its loopback device:
 *
 *   livemig-lab v1 lab=<prefix> owner=<uid> pid=<pid> kind=persistent|run
 *
 * The mark lives and dies with the namespace (no state file to go stale), and a namespace that
 * livemig did not create has none, whatever its name: such a namespace is never removed. The
 * owner is the user who started the lab — under sudo the calling user (SUDO_UID), else the
 * process's uid. `lab down` removes the caller's labs (those left up on purpose, and those of a
 * run that crashed); `lab down --all` every marked one; a new lab clears away only the
 * caller's crashed ones. This file is pure: topology.ts reads the marks and deletes.
 */

/** What a lab namespace's mark says. */
export interface LabMark {
  /** The lab's namespace prefix: every namespace of the lab starts with it. */
  lab: string;
  /** The uid of the user who started it. */
  owner: string;
  /** The process that built it. */
  pid: number;
  /** Left up on purpose (`lab up`) rather than removed when its process ends. */
  persistent: boolean;
}

const MARK = 'livemig-lab v1';

/** The loopback alias that marks a lab namespace. */
export function formatMark(mark: LabMark): string {
  const kind = mark.persistent ? 'persistent' : 'run';
  return `${MARK} lab=${mark.lab} owner=${mark.owner} pid=${mark.pid} kind=${kind}`;
}

/** The mark in a loopback alias, or undefined when it is not one (a namespace livemig did not create). */
export function parseMark(alias: string | undefined): LabMark | undefined {
  const match = /^livemig-lab v1 lab=(\S+) owner=(\S+) pid=(\d+) kind=(persistent|run)$/.exec(alias ?? '');
  if (!match) return undefined;
  const [, lab, owner, pid, kind] = match;
  return { lab: lab!, owner: owner!, pid: Number(pid), persistent: kind === 'persistent' };
}

/** The user a new lab belongs to, and whose labs `lab down` removes: the sudo caller, else this uid. */
export function labOwner(env: NodeJS.ProcessEnv, uid: number | undefined): string {
  const sudoUid = env.SUDO_UID;
  if (sudoUid !== undefined && /^\d+$/.test(sudoUid)) return sudoUid;
  return String(uid ?? 'unknown');
}

/** A namespace that carries a lab mark. */
export interface MarkedNamespace {
  ns: string;
  mark: LabMark;
}

/**
 * Which marked namespaces to remove:
 *   all     every one (`lab down --all`);
 *   mine    the owner's labs left up on purpose, and the owner's labs whose process is gone
 *           (`lab down`: a running `lab run` removes its own lab when it ends);
 *   stale   only the owner's labs whose process is gone (before a new lab is built).
 */
export function namespacesToRemove(
  found: readonly MarkedNamespace[],
  scope: { kind: 'all' } | { kind: 'mine' | 'stale'; owner: string },
  pidAlive: (pid: number) => boolean,
): MarkedNamespace[] {
  if (scope.kind === 'all') return [...found];
  return found.filter(({ mark }) => {
    if (mark.owner !== scope.owner) return false;
    const crashed = !mark.persistent && !pidAlive(mark.pid);
    return crashed || (scope.kind === 'mine' && mark.persistent);
  });
}
