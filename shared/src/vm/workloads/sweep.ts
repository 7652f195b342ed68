/**
 * `sweep`: sequential writes — page 0, 1, 2, … wrapping around, one word per page per pass
 * (a different word and value each pass, so every pass really changes every page).
 */
import { stepHash } from '../prng.ts';
import { R_CURSOR, R_KEY, R_PASS, R_STEP_HI, R_STEP_LO } from '../registers.ts';
import { rateParam } from './params.ts';
import type { WorkloadDefinition } from './types.ts';

/** The sweep workload. */
export const sweep: WorkloadDefinition = {
  id: 4,
  name: 'sweep',
  summary: 'writes pages in order, 0, 1, 2, … wrapping around',
  params: [rateParam(10_000)],
  writesPerStep: 1,
  stepsPerSecond: (params) => params.rate!,
  create({ regs, mem32, dirty, pageCount, regionPageShift: shift }) {
    const mask = (1 << shift) - 1;
    return {
      run(n) {
        let lo = regs[R_STEP_LO]!;
        let hi = regs[R_STEP_HI]!;
        let p = regs[R_CURSOR]!;
        let pass = regs[R_PASS]!;
        const key = regs[R_KEY]!;
        for (let i = 0; i < n; i++) {
          mem32[p >>> shift]![((p & mask) << 10) | (pass & 1023)] = stepHash(lo, hi, key) | 1;
          dirty[p >>> 5]! |= 1 << (p & 31); // after the store: see dirty-log.ts
          p += 1;
          if (p === pageCount) {
            p = 0;
            pass = (pass + 1) >>> 0;
          }
          lo = (lo + 1) >>> 0;
          if (lo === 0) hi = (hi + 1) >>> 0;
        }
        regs[R_STEP_LO] = lo;
        regs[R_STEP_HI] = hi;
        regs[R_CURSOR] = p;
        regs[R_PASS] = pass;
      },
      nextPages(out) {
        out[0] = regs[R_CURSOR]!;
        return 1;
      },
    };
  },
};
