/**
 * `ab`: QEMU's A-B test guest (tests/migration/i386/a-b-bootblock.S): increment byte 0 of every
 * page, in order, forever. From a zero boot, memory always looks like "pages before the cursor
 * hold v+1, the rest hold v" (mod 256): checkAbInvariant() in oracle.ts checks exactly that
 * after a migration, as QEMU's check_guests_ram does.
 */
import { R_CURSOR, R_PASS, R_STEP_HI, R_STEP_LO } from '../registers.ts';
import { rateParam } from './params.ts';
import type { WorkloadDefinition } from './types.ts';

/** The A-B workload. */
export const ab: WorkloadDefinition = {
  id: 5,
  name: 'ab',
  summary: "QEMU's A-B test: increments byte 0 of every page in order, forever",
  params: [rateParam(0)],
  writesPerStep: 1,
  stepsPerSecond: (params) => params.rate!,
  create({ regs, mem8, dirty, pageCount, regionPageShift: shift }) {
    const mask = (1 << shift) - 1;
    return {
      run(n) {
        let lo = regs[R_STEP_LO]!;
        let hi = regs[R_STEP_HI]!;
        let p = regs[R_CURSOR]!;
        let pass = regs[R_PASS]!;
        for (let i = 0; i < n; i++) {
          const m = mem8[p >>> shift]!;
          const at = (p & mask) << 12;
          m[at] = m[at]! + 1; // Uint8Array wraps 255 → 0
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
