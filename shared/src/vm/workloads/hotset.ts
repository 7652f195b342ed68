/**
 * `hotset`: a working set of `wss` bytes (the first wss/4096 pages) is written at random, and
 * each step also reads one random page of the rest, folding the value read into the
 * accumulator that the next store writes — so the cold pages matter (a page lost in migration
 * changes every later store) while never being dirtied. Read, then write.
 */
import { MigrationError } from '../../errors.ts';
import { PAGE_SIZE } from '../guest-memory.ts';
import { below, hash32, stepHash } from '../prng.ts';
import { R_ACC, R_KEY, R_STEP_HI, R_STEP_LO } from '../registers.ts';
import { rateParam } from './params.ts';
import type { WorkloadDefinition } from './types.ts';

const DEFAULT_WSS = 64 * 1024 * 1024;

/** The hotset workload. */
export const hotset: WorkloadDefinition = {
  id: 3,
  name: 'hotset',
  summary: 'writes a working set of wss bytes at random; the rest of memory is only read',
  params: [
    {
      name: 'wss',
      kind: 'size',
      default: (memoryBytes) =>
        Math.max(PAGE_SIZE, Math.min(DEFAULT_WSS, Math.floor(memoryBytes / 4 / PAGE_SIZE) * PAGE_SIZE)),
      defaultText: 'min(64MiB, memory/4)',
      description: 'working-set size: the pages that are written (a multiple of 4KiB, ≤ memory)',
    },
    rateParam(20_000),
  ],
  writesPerStep: 1,
  stepsPerSecond: (params) => params.rate!,
  validate(params, memoryBytes) {
    const wss = params.wss!;
    if (wss < PAGE_SIZE || wss % PAGE_SIZE !== 0) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `hotset: wss must be a positive multiple of 4KiB, got ${wss} bytes`,
      );
    }
    if (wss > memoryBytes) {
      throw new MigrationError(
        'ERR_INVALID_WORKLOAD',
        `hotset: wss (${wss} bytes) is larger than the VM's memory (${memoryBytes} bytes)`,
      );
    }
  },
  create({ regs, mem32, dirty, pageCount, regionPageShift: shift, params }) {
    const mask = (1 << shift) - 1;
    const hot = params.wss! / PAGE_SIZE;
    const cold = pageCount - hot;
    const coldPage = (r: number): number => hot + below(hash32(r ^ 0x5bd1e995), cold);
    return {
      run(n) {
        let lo = regs[R_STEP_LO]!;
        let hi = regs[R_STEP_HI]!;
        let acc = regs[R_ACC]!;
        const key = regs[R_KEY]!;
        for (let i = 0; i < n; i++) {
          const r = stepHash(lo, hi, key);
          if (cold > 0) {
            const r2 = hash32(r ^ 0x5bd1e995);
            const q = hot + below(r2, cold);
            acc = ((acc << 5) | (acc >>> 27)) ^ mem32[q >>> shift]![((q & mask) << 10) | (r2 & 1023)]!;
          } else {
            acc = (acc << 5) | (acc >>> 27);
          }
          const p = below(r, hot);
          mem32[p >>> shift]![((p & mask) << 10) | (r & 1023)] = (acc ^ r) | 1;
          dirty[p >>> 5]! |= 1 << (p & 31); // after the store: see dirty-log.ts
          lo = (lo + 1) >>> 0;
          if (lo === 0) hi = (hi + 1) >>> 0;
        }
        regs[R_STEP_LO] = lo;
        regs[R_STEP_HI] = hi;
        regs[R_ACC] = acc;
      },
      nextPages(out) {
        const r = stepHash(regs[R_STEP_LO]!, regs[R_STEP_HI]!, regs[R_KEY]!);
        if (cold === 0) {
          out[0] = below(r, hot);
          return 1;
        }
        out[0] = coldPage(r);
        out[1] = below(r, hot);
        return 2;
      },
    };
  },
};
