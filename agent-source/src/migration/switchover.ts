/**
 * Where pre-copy goes next, as a pure function of the mode, what the operator asked for and
 * what the switchover rule (convergence.ts) decided. In order:
 *
 *  1. the agent is stopping (SIGTERM)           → stop-and-copy now ('shutdown'): finishing
 *                                                 without post-copy frees the source at once
 *  2. hybrid, asked to switch (migrate-start-postcopy, or --postcopy-after N reached)
 *                                               → post-copy ('postcopy'), at once
 *  3. the rule converged (or nothing is dirty)  → stop-and-copy, hybrid included: a VM that
 *                                                 converges needs no pages left behind
 *  4. the rule gave up (max-rounds, not-shrinking) → hybrid: post-copy; pre-copy: stop-and-copy
 *                                                 with the longer downtime the report shows
 *  otherwise                                    → another round (undefined)
 */
import type { SwitchoverReason } from '@livemig/shared/report';
import type { ConvergenceDecision } from './convergence.ts';
import type { ResolvedMigrateParams } from './params.ts';

export interface ExitInput {
  mode: ResolvedMigrateParams['mode'];
  /** undefined in the middle of a round (no rule has run). */
  decision: ConvergenceDecision | undefined;
  roundsDone: number;
  postcopyAfterRounds: number | null;
  requested: { postcopy: boolean; shutdown: boolean };
}

export interface Exit {
  to: 'stopcopy' | 'postcopy';
  reason: SwitchoverReason;
}

export function chooseExit(input: ExitInput): Exit | undefined {
  if (input.requested.shutdown) return { to: 'stopcopy', reason: 'shutdown' };
  const hybrid = input.mode === 'hybrid';
  const after = input.postcopyAfterRounds;
  if (hybrid && (input.requested.postcopy || (after !== null && input.roundsDone >= after))) {
    return { to: 'postcopy', reason: 'postcopy' };
  }
  const rule = input.decision?.switchover;
  if (rule === undefined) return undefined;
  if (hybrid && (rule === 'max-rounds' || rule === 'not-shrinking')) return { to: 'postcopy', reason: rule };
  return { to: 'stopcopy', reason: rule };
}
