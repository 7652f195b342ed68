/**
 * What a matrix technique name asks for (pure): a fixed mode (precopy, postcopy, hybrid), a
 * fixed mode with engine options (`precopy+compress`, `precopy+auto-converge`,
 * `precopy+dirty-limit=20MB/s`, … — the syntax is shared/src/predict/options.ts), or
 * `auto:<objective>`; and the migrate params the options become (the flags `livemig migrate`
 * takes for them, as control-API fields).
 */
import { MigrationError } from '@livemig/shared';
import type { MigrateParams } from '@livemig/shared/control';
import {
  OBJECTIVES,
  parseTechnique,
  TECHNIQUES,
  type Objective,
  type Technique,
  type TechniqueOptions,
} from '@livemig/shared/predict';
import type { TechniqueName } from './results.ts';

/** The names without options: the fixed modes and auto for each objective. */
export const PLAIN_TECHNIQUE_NAMES: readonly TechniqueName[] = [
  ...TECHNIQUES,
  ...OBJECTIVES.map((o) => `auto:${o}` as const),
];

export interface TechniqueCase {
  /** The engine's mode: a fixed technique, or auto. */
  mode: Technique | 'auto';
  objective: Objective | null;
  /** Engine options (empty for a plain technique and for auto, which runs the engine's defaults). */
  options: TechniqueOptions;
}

/** What `name` asks for; throws ERR_INVALID_ARGUMENT (parseTechnique's) for a name it cannot read. */
export function techniqueCase(name: string): TechniqueCase {
  if (name.startsWith('auto:')) {
    const objective = name.slice('auto:'.length);
    if (!(OBJECTIVES as readonly string[]).includes(objective)) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `"${name}": auto's objective is one of ${OBJECTIVES.join(', ')} (auto takes no options: it runs the engine's defaults)`,
      );
    }
    return { mode: 'auto', objective: objective as Objective, options: {} };
  }
  const { base, options } = parseTechnique(name);
  return { mode: base, objective: null, options };
}

/** Does the name carry engine options (a technique of issue 17)? */
export function hasOptions(name: string): boolean {
  return !name.startsWith('auto:') && name.includes('+');
}

/** The migrate params for the options (absent ones left to the engine's defaults), as `livemig migrate`'s flags give them. */
export function optionParams(options: TechniqueOptions): Partial<MigrateParams> {
  // The encodings' option names are the migrate params' own (compress, xbzrle, xbzrleCacheBytes, …).
  const { throttle: t, ...encodings } = options;
  return {
    ...encodings,
    ...(t?.kind === 'auto-converge'
      ? {
          autoConverge: true,
          cpuThrottleInitial: t.initialPercent,
          cpuThrottleIncrement: t.incrementPercent,
          maxCpuThrottle: t.maxPercent,
          throttleTriggerThreshold: t.triggerThresholdPercent,
        }
      : {}),
    ...(t?.kind === 'dirty-limit' ? { dirtyLimitBps: t.limitBps, maxCpuThrottle: t.maxPercent } : {}),
  };
}
