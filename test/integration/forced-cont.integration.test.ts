/**
 * `cont --force` after an unconfirmed handoff, with real secure agents (mutual TLS on both
 * planes, roles, tickets): the link is cut right after Handoff — the destination got it and runs
 * the VM, its Resumed never reaches the source, which keeps the VM paused as "migrated". Then:
 *
 *   - an operator's `cont --force` is refused by role (ERR_FORBIDDEN): force is an admin's;
 *   - an admin's is refused too while the destination runs the VM (ERR_VM_RUNS_ELSEWHERE): the
 *     source asked it (Query → QueryResult on a data connection of its own) — and the destination
 *     answers that question only to the source the VM came from;
 *   - once the destination is truly gone (SIGKILL), an admin's `cont --force` resumes the VM on
 *     the source, and it is intact (determinism oracle).
 *
 * Each attempt is a warn line (`cont.force`) naming the caller in the source's log.
 *
 * Where to cut: the data plane is TLS, so the test stands in the middle with the endpoints' own
 * credentials (tls-hops.ts, the test owns the CA) and a frame relay between the hops drops the
 * destination's Resumed and cuts the connection. The hops' inner legs are plaintext on loopback
 * inside this test process; the agents themselves only ever see mutual TLS.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@livemig/shared';
import { connectPeer, msg, MsgType } from '@livemig/shared/channel';
import type { MigrationReport } from '@livemig/shared/report';
import { issueCertificate, loadPki } from '@livemig/shared/security';
import { parseVmSpec } from '@livemig/shared/vm';
import { startCuttingRelay } from '../helpers/cutting-relay.ts';
import { useFleet, type FleetAgent, type Person } from '../helpers/fleet.ts';
import { runCli, stopAll } from '../helpers/processes.ts';
import { expectOutcome } from '../helpers/report.ts';
import { startTlsUnwrap, startTlsWrap, type Hop } from '../helpers/tls-hops.ts';
import { waitUntil } from '../helpers/wait.ts';

const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 21 });
/** Another agent of the fleet: allowed to send VMs to the destination, but this VM is not its. */
const OTHER = '127.0.0.250';

const fleet = useFleet();
const hops: Hop[] = [];
afterEach(async () => {
  await Promise.all(hops.splice(0).map((hop) => hop.close()));
  await stopAll();
});

/** `livemig cont --force` of the VM on `agent`, as `as`. */
function forceCont(agent: FleetAgent, as: Person): ReturnType<typeof fleet.cli> {
  return fleet.cli(['cont', '--control', agent.control, '--vm', 'vm', '--force'], as);
}

/** Ask `dest` directly, as agent `as`, whether it holds the VM: its state, or the error code. */
async function query(dest: FleetAgent, as: string, migrationId: string): Promise<string> {
  const [host, port] = dest.listen.split(':') as [string, string];
  const { ca, cert, key } = await loadPki(fleet.pkiDir, as);
  const channel = await connectPeer({
    host,
    port: Number(port),
    agentId: `test-${as}`,
    logger: silentLogger(),
    tls: { ca, cert, key, expectName: dest.name },
  });
  try {
    channel.send(msg.query(migrationId, 'vm'));
    return (await channel.expect(MsgType.QueryResult)).state;
  } catch (error) {
    return (error as { code: string }).code;
  } finally {
    void channel.close();
  }
}

describe('cont --force after an unconfirmed handoff asks the destination first', () => {
  it('partition right after Handoff: operator refused by role, admin refused while the destination runs the VM; destination killed: the admin resumes it here, intact', async () => {
    const [a, b] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const wrap = await startTlsWrap(await loadPki(fleet.pkiDir, a.name), hostPort(b.listen));
    hops.push(wrap);
    // Handoff goes through; the destination's Resumed is dropped and the link cut.
    const relay = await startCuttingRelay(hostPort(wrap.address), (direction, message) =>
      direction === 'to-source' && message.type === MsgType.Resumed ? 'cut-before' : 'forward',
    );
    hops.push(relay);
    const unwrap = await startTlsUnwrap(await loadPki(fleet.pkiDir, b.name), hostPort(relay.address));
    hops.push(unwrap);

    const run = await fleet.cli([
      ...['migrate', '--control', a.control, '--vm', 'vm', '--to', unwrap.address, '--dest-control', b.control],
      '--json',
    ]);
    const report = JSON.parse(run.stdout) as MigrationReport;
    expect(await relay.cut).toBe('cut-before Resumed to-source');
    expectOutcome(report, 'failed');
    expect(report.vmRunsOn).toBe('paused-on-source');
    const migrationId = (await fleet.ask(a, (client) => client.request('query-migrate', {})))?.migrationId ?? '';
    expect((await fleet.vms(a)).map((v) => v.state)).toEqual(['migrated']);
    await waitUntil(async () => (await fleet.vms(b))[0]?.state === 'running', {
      what: 'the destination runs the VM it was handed',
    });

    // An operator may not force at all: the role check refuses before anything is asked.
    const byOperator = await forceCont(a, 'operator');
    expect(byOperator.code).not.toBe(0);
    expect(byOperator.stderr).toMatch(/ERR_FORBIDDEN/);

    // An admin may force — but the source asks the destination first, and it runs the VM.
    const byAdmin = await forceCont(a, 'admin');
    expect(byAdmin.code).not.toBe(0);
    expect(byAdmin.stderr).toMatch(/ERR_VM_RUNS_ELSEWHERE: .*holds "vm" \(running\)/);
    expect((await fleet.vms(a)).map((v) => v.state)).toEqual(['migrated']);
    await logged(a, /"event":"cont\.force".*"caller":"admin".*"outcome":"refused"/);
    await logged(a, /"caller":\{"name":"operator","role":"operator"\}.*control command refused/);

    // The destination answers that question to the VM's source only.
    await issueCertificate(fleet.pkiDir, { name: OTHER, role: 'agent' });
    expect(await query(b, a.name, migrationId)).toBe('running');
    expect(await query(b, OTHER, migrationId)).toBe('ERR_FORBIDDEN');

    // The destination is gone for good: now only the admin's word is left, and it is taken.
    b.child.kill('SIGKILL');
    await b.exited;
    const afterKill = await forceCont(a, 'admin');
    expect(afterKill.code, afterKill.stderr).toBe(0);
    expect(afterKill.stdout).toMatch(/vm: running/);
    await logged(a, /"event":"cont\.force".*"caller":"admin".*"outcome":"resumed-unconfirmed"/);
    const oracle = await fleet.oracle(a, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);

    // The source's audit log names each attempt — the operator's refused one too — and verifies.
    const log = join(process.env.XDG_STATE_HOME!, 'livemig', a.name, 'audit.log');
    const forced = (await readFile(log, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AuditEvent)
      .filter((event) => event.command === 'cont' && event.args?.force === true)
      .map((event) => [event.caller?.name, event.result?.error?.code ?? 'ok']);
    expect(forced).toEqual([
      ['operator', 'ERR_FORBIDDEN'],
      ['admin', 'ERR_VM_RUNS_ELSEWHERE'],
      ['admin', 'ok'],
    ]);
    const verify = await runCli(['audit', 'verify', '--log', log, '--pki', fleet.pkiDir]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});

/** The fields of an audit log line this test reads. */
interface AuditEvent {
  command?: string;
  args?: { force?: boolean };
  caller?: { name: string } | null;
  result?: { error?: { code: string } };
}

/** `agent` logged a line matching `pattern` (its stderr reaches this process a moment after its reply). */
function logged(agent: FleetAgent, pattern: RegExp): Promise<true> {
  return waitUntil(() => pattern.test(agent.logs()), { what: `the agent logs ${pattern}`, timeoutMs: 10_000 });
}

/** "HOST:PORT" as connect options. */
function hostPort(address: string): { host: string; port: number } {
  const [host, port] = address.split(':') as [string, string];
  return { host, port: Number(port) };
}
