import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ControlClient } from '@livemig/shared/control';
import { followMigration } from '../cli/follow-migration.ts';
const [memory = '1GiB', init = 'random', workload = 'idle', bw = ''] = process.argv.slice(2);
const dir = process.env.PROF_DIR!;
function start(role: string, args: string[]) {
  const child = spawn(process.execPath, [`--cpu-prof`, `--cpu-prof-dir=${dir}/${role}`, 'bin/livemig.mjs', role, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise<{ child: typeof child; ready: Record<string, string> }>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (l) => { if (l.includes('"ready"')) resolve({ child, ready: JSON.parse(l) }); });
  });
}
const dest = await start('dest', ['--listen', '127.0.0.1:0', '--control', '127.0.0.1:0', '--log-level', 'warn']);
const source = await start('source', ['--control', '127.0.0.1:0', '--log-level', 'warn']);
const c = await ControlClient.connect(source.ready.control!);
await c.request('create-vm', { name: 'v', memory, init, workload, seed: 1 } as never);
const { migrationId } = await c.request('migrate', { vm: 'v', to: dest.ready.listen, params: { maxBandwidthBps: bw ? Number(bw) : null } } as never);
const r = await followMigration(c, migrationId, { progress: false });
c.close();
console.log(JSON.stringify({ times: r.times, rounds: r.rounds.map((x) => [x.pages, x.ms.toFixed(1)]) }));
for (const a of [dest, source]) { a.child.kill('SIGTERM'); await new Promise((res) => a.child.once('exit', res)); }
