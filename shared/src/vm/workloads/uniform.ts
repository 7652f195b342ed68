/**
 * `uniform`: each step stores one 32-bit word at a random offset of a random page, drawn
 * uniformly over all of memory — the worst case for pre-copy (no locality).
 */
import { below, stepHash } from '../prng.ts';
import { R_KEY, R_STEP_HI, R_STEP_LO } from '../registers.ts';
import { rateParam } from './params.ts';
import type { WorkloadDefinition } from './types.ts';

/** The uniform workload. */
export const uniform: WorkloadDefinition = {
  id: 2,
  name: 'uniform',
  summary: 'stores to random pages over all of memory',
  params: [rateParam(10_000)],
  writesPerStep: 1,
  stepsPerSecond: (params) => params.rate!,
  create({ regs, mem32, dirty, pageCount, regionPageShift: shift }) {
    const mask = (1 << shift) - 1;
    return {
      run(n) {
        let lo = regs[R_STEP_LO]!;
        let hi = regs[R_STEP_HI]!;
        const key = regs[R_KEY]!;
        for (let i = 0; i < n; i++) {
          const r = stepHash(lo, hi, key);
          const p = below(r, pageCount);
          mem32[p >>> shift]![((p & mask) << 10) | (r & 1023)] = Math.imul(r ^ lo, 0x9e3779b1) | 1;
          dirty[p >>> 5]! |= 1 << (p & 31); // after the store: see dirty-log.ts
          lo = (lo + 1) >>> 0;
          if (lo === 0) hi = (hi + 1) >>> 0;
        }
        regs[R_STEP_LO] = lo;
        regs[R_STEP_HI] = hi;
      },
      nextPages(out) {
        out[0] = below(stepHash(regs[R_STEP_LO]!, regs[R_STEP_HI]!, regs[R_KEY]!), pageCount);
        return 1;
      },
    };
  },
};
