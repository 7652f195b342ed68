/**
 * Child process of bench/storage.bench.ts: `livemig agent` itself (cli/main.ts, the same flags,
 * the same daemon), with one thing added for the benchmark's VMs. A VM this agent *boots* (not
 * one that migrates in) with a disk first runs its own guest at full speed, before it starts,
 * until its disk has at least <fillBytes> allocated: the `disk` workload writing its
 * self-describing blocks through the request ring and the device, exactly as it does later at
 * its paced rate (ToyVm.runSteps with fullSpeed, as the oracle's reference VM runs). So a VM
 * that writes 100 blocks a second still starts with 512 MiB of its disk written — by itself,
 * with the generation table in its memory saying what each block must hold.
 *
 * argv: <fillBytes> <node> <cli> <role> [agent flags…] (what startAgentProcess would run, after
 * its `wrap`). Prints `{"event":"filled",…}` on stderr once the fill is done.
 */
import { ToyVm } from '@livemig/shared/vm';

/** Most steps run between two looks at the allocated bytes (two steps per request). */
const FILL_CHUNK_STEPS = 20_000;
const BLOCK = 4096;

const [, , fillText = '0', , cli = '', ...flags] = process.argv;
const fillBytes = Number(fillText);

const boot = ToyVm.boot.bind(ToyVm);
ToyVm.boot = async (spec, options) => {
  const vm = await boot(spec, options);
  if (fillBytes > 0 && spec.disk !== null) {
    const t0 = performance.now();
    for (let left = fillBytes; left > 0; left = fillBytes - (vm.disk?.allocatedBytes ?? fillBytes)) {
      // Two steps a request: never more steps than it takes to write the blocks still missing.
      await vm.runSteps(Math.min(FILL_CHUNK_STEPS, 2 * Math.ceil(left / BLOCK)), { fullSpeed: true });
    }
    const filled = {
      event: 'filled',
      steps: vm.steps,
      allocatedBytes: vm.disk?.allocatedBytes,
      ms: performance.now() - t0,
    };
    process.stderr.write(JSON.stringify(filled) + '\n');
  }
  return vm;
};

process.argv = [process.argv[0]!, cli, ...flags];
await import('../cli/main.ts');
