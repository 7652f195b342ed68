/**
 * The destination's own figures as the source takes them (dest-figures.ts): well-formed thread
 * and pre-fault figures join the migration's context for the report; malformed ones are left
 * out and logged with their code, and never fail the migration.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { PrefaultReport, SideThreads } from '@livemig/shared/report';
import { takeDestFigures } from '../../../agent-source/src/migration/dest-figures.ts';

function context() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const ctx: Parameters<typeof takeDestFigures>[0] = {
    destThreads: undefined,
    destPrefault: undefined,
    logger: pino({ level: 'warn' }, sink),
  };
  return { ctx, lines };
}

const threads: SideThreads = { wallMs: 10, cpuMs: 8, threads: [{ name: 'main', cpuMs: 5, wallMs: 10 }] };
const prefault: PrefaultReport = { pages: 4, touched: 4, startMs: 1, ms: 2, firstPassMs: 9, offCriticalPath: true };

describe('takeDestFigures', () => {
  it('keeps well-formed figures', () => {
    const { ctx, lines } = context();
    takeDestFigures(ctx, { threads, prefault, faults: 3 });
    expect(ctx.destThreads).toEqual(threads);
    expect(ctx.destPrefault).toEqual(prefault);
    expect(lines).toEqual([]);
  });

  it('leaves out malformed figures, logging each refusal with its code, and keeps the good one', () => {
    const { ctx, lines } = context();
    takeDestFigures(ctx, { threads: { ...threads, cpuMs: Number.NaN }, prefault });
    expect(ctx.destThreads).toBeUndefined();
    expect(ctx.destPrefault).toEqual(prefault);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ event: 'dest.figures.refused', err: { code: 'ERR_BAD_METADATA' } });
  });

  it('an older destination that sends none: nothing changes, nothing logged', () => {
    const { ctx, lines } = context();
    takeDestFigures(ctx, { faults: 0 });
    expect(ctx.destThreads).toBeUndefined();
    expect(ctx.destPrefault).toBeUndefined();
    expect(lines).toEqual([]);
  });
});
