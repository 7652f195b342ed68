/**
 * The vCPU: a worker thread that runs the workload over shared guest memory, in batches of at
 * most DEVICE_TICK_STEPS steps (sized to take ~0.25 ms) that never cross a timer tick. Between batches — and only there,
 * so no store is ever in flight — it reads the control block (control-block.ts) and parks,
 * exits, paces itself or throttles. The loop is synchronous: every wait is Atomics.wait on the
 * control block's SEQ word, with a timeout when pacing, so a command from the host wakes it at
 * once and nothing busy-spins.
 *
 * Pacing: the workload asks for `rate` steps/s; the vCPU keeps a schedule (steps due since the
 * last rebase at rate × throttle) and sleeps until about 1 ms worth of steps are due. If it falls
 * more than 50 ms behind it rebases rather than bursting, so a rate it cannot reach shows as a
 * lower achieved rate. Throttle f: besides scaling the pace, every ms of running earns
 * (1 − f)/f ms of sleep (the duty cycle QEMU's auto-converge imposes). None of this affects what
 * a step does, only when it happens.
 *
 * Input-driven workloads (kv) say how many steps they can run now; with none, the vCPU halts on
 * SEQ like HLT until the NIC's kick (or a command) wakes it.
 *
 * Post-copy: until the host sets ALL_PRESENT the vCPU runs one step at a time, first asking the
 * workload which pages the step touches and checking each in the presence map; an absent page
 * is a fault (ring + notify to the host) and the vCPU sleeps until that page is installed or a
 * command arrives (then it returns to the loop at a clean step boundary and may park). Once all
 * pages are present it runs whole batches with no presence checks at all.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import {
  BIG_LIVE_STEPS,
  BIG_STOP_AT,
  CMD_EXIT,
  CMD_RUN,
  CTL_ACK,
  CTL_ALL_PRESENT,
  CTL_CMD,
  CTL_FAULT_SEQ,
  CTL_FULL_SPEED,
  CTL_SEQ,
  CTL_STATE,
  CTL_THROTTLE_PPM,
  CTL_WAIT_PAGE,
  ControlBlock,
  F64_BLOCKED_MS,
  FAULT_RING,
  STATE_BOOTING,
  STATE_EXITED,
  STATE_PAUSED,
  STATE_RUNNING,
} from './control-block.ts';
import { DEVICE_TICK_STEPS, DeviceBus } from './devices.ts';
import type { GuestMemoryLayout } from './guest-memory.ts';
import { RegisterFile } from './registers.ts';
import { parseWorkloadSpec } from './workload-spec.ts';
import { MAX_PAGES_PER_STEP } from './workloads/types.ts';
import { announceThread, sealThread } from './thread-cpu.mjs';

/** What the host passes to the vCPU worker (structured-clonable; the buffers are shared). */
export interface VcpuWorkerData {
  /** This module's URL (worker-boot.mjs imports it). */
  entry: string;
  /** Marks the worker as a vCPU. */
  kind: 'livemig-vcpu';
  memory: GuestMemoryLayout;
  dirty: SharedArrayBuffer;
  /** Present only while the VM may have absent pages (post-copy destination). */
  presence: SharedArrayBuffer | null;
  control: SharedArrayBuffer;
  registers: SharedArrayBuffer;
  devices: SharedArrayBuffer;
  /** Canonical workload spec. */
  workload: string;
  /** Where this thread announces its id and, as it exits, its CPU time (thread-registry.ts). */
  thread: SharedArrayBuffer;
}

/** Behind by more than this, the pacer forgets the backlog instead of bursting to catch up. */
const MAX_LAG_MS = 50;
/**
 * Batches aim at this duration: it bounds how long pause() waits for a batch to finish (the
 * downtime floor). Steps are ~15 ns on touched memory, so batches are usually a full timer
 * interval; steps that fault in fresh memory (µs each) get smaller batches.
 */
const TARGET_BATCH_MS = 0.25;
const MIN_BATCH = 16;

/** Runs the vCPU until the host says exit. Blocks the calling thread: call it in a worker. */
export function runVcpu(data: VcpuWorkerData): void {
  announceThread(data.thread);
  const ctl = new ControlBlock(data.control);
  const { i32, big, f64 } = ctl;
  const registers = new RegisterFile(data.registers);
  const regs = registers.words;
  const devices = new DeviceBus(data.devices);
  const { definition, params } = parseWorkloadSpec(data.workload, data.memory.bytes);
  const pageCount = data.memory.bytes / 4096;
  const program = definition.create({
    regs,
    mem32: data.memory.regions.map((r) => new Int32Array(r)),
    mem8: data.memory.regions.map((r) => new Uint8Array(r)),
    regionPageShift: Math.log2(data.memory.regionBytes) - 12,
    dirty: new Int32Array(data.dirty),
    pageCount,
    params,
  });
  const rate = definition.stepsPerSecond(params);
  const presence = data.presence ? new Int32Array(data.presence) : null;
  let allPresent = presence === null;
  const touched = new Int32Array(MAX_PAGES_PER_STEP);

  let steps = 0;
  let running = false;
  let schedStart = 0;
  let schedSteps = 0;
  let debt = 0; // ms of sleep owed to the throttle
  let lastThrottle = -1;
  let lastFull = -1;
  let batchLimit = DEVICE_TICK_STEPS;

  const publish = (value: number): void => {
    Atomics.store(big, BIG_LIVE_STEPS, BigInt(value));
  };
  const rebase = (now: number): void => {
    schedStart = now;
    schedSteps = steps;
    debt = 0;
  };
  const sleep = (ms: number, seq: number): number => {
    const t0 = performance.now();
    Atomics.wait(i32, CTL_SEQ, seq, ms);
    return performance.now() - t0;
  };

  /** Blocks on an absent page until it is installed (true) or a command arrives (false). */
  const waitForPage = (p: number): boolean => {
    const t0 = performance.now();
    Atomics.store(i32, CTL_WAIT_PAGE, p);
    const k = Atomics.load(i32, CTL_FAULT_SEQ);
    ctl.faultPages[k % FAULT_RING] = p;
    ctl.faultTimes[k % FAULT_RING] = performance.timeOrigin + t0;
    Atomics.store(i32, CTL_FAULT_SEQ, k + 1);
    Atomics.notify(i32, CTL_FAULT_SEQ);
    const bit = 1 << (p & 31);
    let arrived = false;
    for (;;) {
      const seq = Atomics.load(i32, CTL_SEQ);
      if ((Atomics.load(presence!, p >>> 5) & bit) !== 0) {
        arrived = true;
        break;
      }
      if (Atomics.load(i32, CTL_CMD) !== CMD_RUN) break;
      Atomics.wait(i32, CTL_SEQ, seq);
    }
    Atomics.store(i32, CTL_WAIT_PAGE, -1);
    f64[F64_BLOCKED_MS] = f64[F64_BLOCKED_MS]! + (performance.now() - t0);
    return arrived;
  };

  /** Runs up to n steps one at a time with presence checks; returns how many ran. */
  const runChecked = (n: number): number => {
    for (let i = 0; i < n; i++) {
      const k = program.nextPages(touched);
      for (let j = 0; j < k; j++) {
        const p = touched[j]!;
        if ((Atomics.load(presence!, p >>> 5) & (1 << (p & 31))) === 0) {
          publish(steps + i);
          if (!waitForPage(p)) return i;
        }
      }
      program.run(1);
    }
    return n;
  };

  // Up: the host's `ready` waits for the state to leave BOOTING (whatever it was told meanwhile,
  // the loop below reads next).
  Atomics.compareExchange(i32, CTL_STATE, STATE_BOOTING, STATE_PAUSED);
  Atomics.notify(i32, CTL_STATE);
  for (;;) {
    const seq = Atomics.load(i32, CTL_SEQ);
    const cmd = Atomics.load(i32, CTL_CMD);
    if (cmd === CMD_EXIT) break;
    // Registers are written back after every batch, so this is the live count; while parked the
    // host may also have imported new ones.
    steps = registers.steps;
    const stopAt = Number(Atomics.load(big, BIG_STOP_AT));
    if (cmd !== CMD_RUN || steps >= stopAt) {
      if (running || Atomics.load(i32, CTL_ACK) !== seq) {
        running = false;
        publish(steps);
        Atomics.store(i32, CTL_STATE, STATE_PAUSED);
        Atomics.store(i32, CTL_ACK, seq);
        Atomics.notify(i32, CTL_ACK);
      }
      Atomics.wait(i32, CTL_SEQ, seq);
      continue;
    }
    const now = performance.now();
    if (!running) {
      running = true;
      Atomics.store(i32, CTL_STATE, STATE_RUNNING);
      rebase(now);
    }
    const throttle = Atomics.load(i32, CTL_THROTTLE_PPM) / 1e6;
    const full = Atomics.load(i32, CTL_FULL_SPEED);
    if (throttle !== lastThrottle || full !== lastFull) {
      lastThrottle = throttle;
      lastFull = full;
      rebase(now);
    }
    let n = Math.min(batchLimit, DEVICE_TICK_STEPS - (steps % DEVICE_TICK_STEPS), stopAt - steps);
    if (full === 0 && rate > 0) {
      const perMs = (rate * throttle) / 1000;
      let allowed = Math.floor(schedSteps + (now - schedStart) * perMs) - steps;
      if (allowed > perMs * MAX_LAG_MS + DEVICE_TICK_STEPS) {
        rebase(now - 1);
        allowed = Math.ceil(perMs);
      }
      if (allowed <= 0) {
        const dueAt = schedStart + (steps + Math.max(1, Math.ceil(perMs)) - schedSteps) / perMs;
        debt = Math.max(0, debt - sleep(Math.max(0.05, dueAt - now), seq));
        continue;
      }
      n = Math.min(n, allowed);
    }

    if (program.pending) {
      // An input-driven guest with nothing to do halts until a command or the device's kick
      // bumps SEQ (read above, before pending(): a kick in between makes this wait return at once).
      const runnable = program.pending();
      if (runnable === 0) {
        Atomics.wait(i32, CTL_SEQ, seq);
        rebase(performance.now());
        continue;
      }
      n = Math.min(n, runnable);
    }
    if (!allPresent) allPresent = Atomics.load(i32, CTL_ALL_PRESENT) === 1;
    let done = n;
    if (allPresent) program.run(n);
    else done = runChecked(n);
    steps += done;
    if (done > 0 && steps % DEVICE_TICK_STEPS === 0) devices.tick(regs);
    publish(steps);

    const busy = performance.now() - now;
    if (allPresent) {
      if (busy > TARGET_BATCH_MS) batchLimit = Math.max(MIN_BATCH, Math.floor((n * TARGET_BATCH_MS) / busy));
      else if (n === batchLimit && busy < TARGET_BATCH_MS / 2) batchLimit = Math.min(DEVICE_TICK_STEPS, batchLimit * 2);
    }
    if (full === 0 && throttle < 1) {
      debt += (busy * (1 - throttle)) / throttle;
      if (debt >= 1) debt = Math.max(0, debt - sleep(debt, seq));
    }
  }
  publish(registers.steps);
  sealThread(data.thread);
  Atomics.store(i32, CTL_STATE, STATE_EXITED);
  Atomics.notify(i32, CTL_ACK);
}

if (!isMainThread && (workerData as Partial<VcpuWorkerData> | null)?.kind === 'livemig-vcpu') {
  runVcpu(workerData as VcpuWorkerData);
}
