/**
 * Child process of reclaim.test.ts: boots a 1 GiB VM with random memory, destroys it, and
 * reports its RSS every 100 ms for a few seconds, as one JSON line on stdout. Runs without
 * --expose-gc, and keeps its reference to the destroyed ToyVm (as a careless caller would), so
 * what it shows is that destroy() itself lets the memory go.
 *
 *   node --import tsx reclaim.child.ts plain|nic [watchMs]
 *
 * With `nic` the VM has a NIC and a waitForTx() is pending when it is destroyed, like a NIC
 * backend's transmit loop: that wait must not keep the memory either.
 */
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';

const MiB = 1024 * 1024;
const variant = process.argv[2] === 'nic' ? 'nic' : 'plain';
const watchMs = Number(process.argv[3] ?? 5000);
const rssMiB = (): number => Math.round(process.memoryUsage().rss / MiB);

const before = rssMiB();
const vm = await ToyVm.boot(
  parseVmSpec(
    variant === 'nic'
      ? { memory: '1GiB', init: 'random', workload: 'kv:keys=1024', nic: '192.0.2.9:7700' }
      : { memory: '1GiB', init: 'random', workload: 'uniform:rate=0' },
  ),
);
await vm.runSteps(variant === 'nic' ? 0 : 100_000);
let txWaitEnded = false;
if (vm.nic) void vm.nic.waitForTx().then(() => (txWaitEnded = true));
const booted = rssMiB();
const t0 = performance.now();
await vm.destroy();
const destroyMs = performance.now() - t0;
const samples: { ms: number; rssMiB: number }[] = [];
while (performance.now() - t0 < watchMs) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  samples.push({ ms: Math.round(performance.now() - t0), rssMiB: rssMiB() });
}
process.stdout.write(
  JSON.stringify({
    variant,
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
    before,
    booted,
    destroyMs: Math.round(destroyMs),
    samples,
    status: vm.status, // the reference is still held
    txWaitEnded,
  }) + '\n',
);
