/**
 * The audit log on disk: created private, an `open` entry first, each append written and
 * fsynced in order, the chain continued across restarts; one agent per log (a live holder's
 * lock refuses a second, a dead one's is taken over); a torn last line stops the agent rather
 * than be built upon.
 */
import { spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '@livemig/agent';
import { verifyAuditLog, type AuditBody, type Signer } from '@livemig/shared/security';
import { useTestFleet } from '../../helpers/signers.ts';

const f = useTestFleet('agent-a');
let signer: Signer;
let dir: string;
beforeAll(async () => {
  signer = f.signer('agent-a');
  dir = await mkdtemp(join(tmpdir(), 'livemig-audit-log-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let n = 0;
const fresh = (): string => join(dir, `run-${++n}`, 'state', 'audit.log');
const stop = (vm: string): AuditBody => ({
  kind: 'command',
  caller: { name: 'alice', role: 'operator' },
  command: 'stop',
  args: { vm },
  result: { ok: null },
});

describe('AuditLog', () => {
  it('creates the log 0600 in a 0700 directory and starts it with an open entry carrying the certificate', async () => {
    const file = fresh();
    const log = await AuditLog.open({ file, agent: 'agent-a', signer });
    await log.close();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(file, '..'))).mode & 0o777).toBe(0o700);
    const [open] = (await readFile(file, 'utf8'))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(open).toMatchObject({
      seq: 1,
      kind: 'open',
      agent: 'agent-a',
      certificate: signer.certificate,
      pid: process.pid,
    });
  });

  it('appends in call order, each entry on disk when its promise resolves; a restart continues the chain', async () => {
    const file = fresh();
    const log = await AuditLog.open({ file, agent: 'agent-a', signer });
    const entries = await Promise.all(['a', 'b', 'c'].map((vm) => log.append(stop(vm))));
    expect(entries.map((e) => e.seq)).toEqual([2, 3, 4]);
    expect((await readFile(file, 'utf8')).trimEnd().split('\n')).toHaveLength(4);
    await log.close();
    const again = await AuditLog.open({ file, agent: 'agent-a', signer });
    expect((await again.append(stop('d'))).seq).toBe(6);
    await again.close();
    expect(verifyAuditLog(await readFile(file, 'utf8'), f.trust)).toMatchObject({ ok: true, entries: 6 });
  });

  it('one agent per log: a second open while the first holds it is refused (ERR_AUDIT); after close it opens', async () => {
    const file = fresh();
    const first = await AuditLog.open({ file, agent: 'agent-a', signer });
    await expect(AuditLog.open({ file, agent: 'agent-a', signer })).rejects.toMatchObject({
      code: 'ERR_AUDIT',
      message: expect.stringMatching(/in use by process \d+/),
    });
    await first.close();
    await (await AuditLog.open({ file, agent: 'agent-a', signer })).close();
  });

  it('takes over the lock of a process that is gone', async () => {
    const file = fresh();
    await (await AuditLog.open({ file, agent: 'agent-a', signer })).close();
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(`${file}.lock`, `${gone} 1\n`);
    const log = await AuditLog.open({ file, agent: 'agent-a', signer });
    await log.close();
    expect(verifyAuditLog(await readFile(file, 'utf8'), f.trust)).toMatchObject({ ok: true, entries: 2 });
  });

  it('refuses to build on a torn last line, and says what to do', async () => {
    const file = fresh();
    await (await AuditLog.open({ file, agent: 'agent-a', signer })).close();
    await appendFile(file, '{"v":1,"seq":2,"ag');
    await expect(AuditLog.open({ file, agent: 'agent-a', signer })).rejects.toMatchObject({
      code: 'ERR_AUDIT',
      message: expect.stringMatching(/last line .* is incomplete .*audit verify/),
    });
  });

  it('an agent without a key writes a chained log with no signatures', async () => {
    const file = fresh();
    const log = await AuditLog.open({ file, agent: 'agent-x' });
    await log.append(stop('a'));
    await log.close();
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('"sig"');
    expect(verifyAuditLog(text)).toMatchObject({ ok: true, entries: 2 });
  });

  it('a log it cannot write stops with ERR_AUDIT', async () => {
    await expect(AuditLog.open({ file: '/dev/full', agent: 'agent-a', signer })).rejects.toMatchObject({
      code: 'ERR_AUDIT',
    });
  });
});
