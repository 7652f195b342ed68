/**
 * The host side of a VM's NIC (QEMU's net backend, in miniature): a UDP socket bound to the
 * VM's own ip:port, datagrams in through the device's RX ring, replies out of its TX ring — and
 * the address that moves with the VM (address-mover.ts).
 *
 *   source, VM booted       prepare() + take(): the address is here, the socket bound
 *   destination, Setup      prepare(): everything short of the address (fails the migration
 *                           early, while the source still runs the VM, if it cannot be done)
 *   source, migration start prepareGive(): the mover readies what give() will do (a fork, not
 *                           at handoff)
 *   source, before Handoff  give(): the socket closes (synchronously: a loopback port is free
 *                           before the destination can try it), the mover lets go
 *   destination, Handoff    take(), started as the vCPU resumes: on loopback the port is bound
 *                           in that same tick, synchronously (see take())
 *
 * The device only moves data while the VM runs, as in QEMU where a stopped VM's NICs deliver
 * nothing: datagrams that arrive while it is paused, or while the guest's RX ring is full, wait
 * here (up to MAX_QUEUED, like QEMU's net queue) and go in when there is room, or are dropped
 * if the VM leaves — like frames a switch sent to the old port. At a pause the device first
 * sends the replies the guest already queued; whatever the guest queues later (nothing, while
 * it is stopped) would be sent by whichever host runs it next, since the TX index is guest memory.
 */
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import { MigrationError, toMigrationError } from '../../errors.ts';
import { ipv4ToU32, u32ToIpv4 } from '../../vm/nic/index.ts';
import type { ToyVm } from '../../vm/index.ts';
import { macForIp, type AddressMode, type AddressMover, type VmAddress } from './address-mover.ts';

/** Datagrams held for the VM at most (QEMU's net queue holds 10000 packets too). */
const MAX_QUEUED = 10_000;

/** How long the destination keeps retrying a loopback port the source has not let go of yet. */
const BIND_RETRY_MS = 2000;

interface Queued {
  ip: number;
  port: number;
  payload: Buffer;
}

export interface NicBackendOptions {
  vm: ToyVm;
  mover: AddressMover;
  logger: Logger;
}

export class NicBackend {
  readonly #vm: ToyVm;
  readonly #mover: AddressMover;
  readonly #logger: Logger;
  readonly #queue: Queued[] = [];
  #socket: dgram.Socket | undefined;
  #stopTx: AbortController | undefined;
  #unsubscribe: () => void;
  #droppedWhilePaused = 0;
  #bindAttempts = 0;
  #disposed = false;
  #taken = false;

  constructor(options: NicBackendOptions) {
    if (!options.vm.nic) throw new MigrationError('ERR_INVALID_ARGUMENT', 'this VM has no NIC');
    this.#vm = options.vm;
    this.#mover = options.mover;
    this.#logger = options.logger.child({ nic: this.address.ip + ':' + this.address.port });
    this.#unsubscribe = this.#vm.onStatus((status) => {
      if (status === 'running') this.#flushQueue();
      // A stopping device completes what the guest already handed it: replies the guest queued
      // before the pause go out now, not after the VM runs again (perhaps on another host).
      // This runs before the caller harvests the dirty log, so the TX index it moves migrates.
      if (status === 'paused' && this.#taken && this.#socket) this.#vm.nic!.transmit(sendFrom(this.#socket));
    });
  }

  /** The VM's network identity. */
  get address(): VmAddress {
    const [ip, port] = this.#vm.spec.nic!.split(':') as [string, string];
    return { ip, port: Number(port), mac: macForIp(ip) };
  }

  /** Which mechanism moves the address. */
  get mode(): AddressMode {
    return this.#mover.mode;
  }

  /** Datagrams waiting here for the VM (paused, or its receive ring full). */
  get queued(): number {
    return this.#queue.length;
  }

  /** True while this host holds the address. */
  get taken(): boolean {
    return this.#taken;
  }

  /**
   * Everything short of taking the address; throws (typed) if this host cannot host it. When
   * the mover allows (macvlan: the IP is on the link, down), the socket is bound now too, so
   * taking the address at handoff is only bringing the link up. Otherwise the bind path is
   * warmed here: a process's first bind loads Node's cluster module and compiles the bind code,
   * 4 ms measured on an idle machine, which on the destination would fall inside the handoff.
   */
  async prepare(): Promise<void> {
    await this.#mover.prepare();
    if (this.#mover.bindBeforeTake) {
      if (!this.#socket) this.#attach(await this.#bind());
    } else {
      warmBind(this.address.ip);
    }
  }

  /**
   * Take the address and start moving datagrams. Resolves with the time it took.
   *
   * The port is tried at once, in the caller's tick, before this method awaits anything: on
   * loopback the source closed it before sending Handoff, so it is free now, and the destination
   * holds it before its vCPU resumes — from then on a client's datagrams are queued (in the
   * socket, then here) instead of being refused, and the first come in right after the resume.
   * Awaiting first would put the bind behind the rest of the Handoff handling (the vCPU's
   * resume, Resumed, logging: 2–5 ms measured under load). If the port is not bindable yet
   * (EADDRINUSE, or an address only the mover's take() brings), the bind follows the mover's
   * take(), retried as before.
   */
  async take(): Promise<{ ms: number }> {
    if (this.#taken) return { ms: 0 };
    const started = performance.now();
    if (!this.#socket) {
      const early = this.#bindNow();
      if (early instanceof dgram.Socket) this.#attach(early);
    }
    await this.#mover.take();
    const tookAddress = performance.now() - started;
    const socket = this.#socket ?? this.#attach(await this.#bind());
    if (this.#disposed) {
      socket.close();
      throw new MigrationError('ERR_VM_STATE', 'the NIC was disposed while taking its address');
    }
    this.#taken = true;
    this.#startTx(socket);
    this.#flushQueue();
    const ms = performance.now() - started;
    this.#logger.info(
      { event: 'nic.taken', mode: this.mode, ms, addressMs: tookAddress, bindAttempts: this.#bindAttempts },
      `took ${this.address.ip}:${this.address.port}`,
    );
    return { ms };
  }

  #attach(socket: dgram.Socket): dgram.Socket {
    this.#socket = socket;
    socket.on('message', (payload, from) => this.#receive(payload, from));
    socket.on('error', (error) => this.#logger.warn({ err: error, event: 'nic.socket-error' }, 'NIC socket error'));
    return socket;
  }

  /** A migration of this VM starts: get the mover ready to give the address up (AddressMover.prepareGive). */
  prepareGive(): void {
    if (!this.#disposed) this.#mover.prepareGive();
  }

  /**
   * Let go of the address: the socket closes at once (synchronously), then the mover gives the
   * address up; datagrams waiting for a paused VM are dropped. The returned promise is the mover's.
   */
  give(): Promise<void> {
    this.#stopTx?.abort();
    this.#stopTx = undefined;
    this.#socket?.close();
    this.#socket = undefined;
    this.#taken = false;
    if (this.#queue.length) {
      this.#logger.info(
        { event: 'nic.dropped-at-handoff', datagrams: this.#queue.length },
        'dropping queued datagrams',
      );
      this.#queue.length = 0;
    }
    return this.#mover.give().catch((error: unknown) => {
      this.#logger.warn({ err: error, event: 'nic.give-failed' }, 'could not give up the address cleanly');
    });
  }

  /** Give the address up (if held) and undo prepare. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#unsubscribe();
    await this.give();
    await this.#mover.dispose().catch((error: unknown) => {
      this.#logger.warn({ err: error, event: 'nic.dispose-failed' }, 'could not remove the address cleanly');
    });
  }

  /**
   * One attempt to bind ip:port, complete when it returns (the socket's lookup answers at once):
   * the bound socket, or the error it failed with (the socket closed).
   */
  #bindNow(): dgram.Socket | Error {
    const { ip, port } = this.address;
    this.#bindAttempts += 1;
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false, lookup: literalLookup });
    let failure: Error | undefined;
    let bound = false;
    const onError = (error: Error): void => {
      failure = error;
    };
    socket.once('error', onError);
    socket.bind({ address: ip, port, exclusive: true }, () => (bound = true));
    socket.off('error', onError);
    if (bound) return socket;
    socket.close();
    // Not expected: with a lookup that answers at once, dgram binds or fails inside bind().
    return failure ?? new MigrationError('ERR_ADDRESS', `binding ${ip}:${port} did not complete at once`);
  }

  /** Bind ip:port; on loopback the source may still be closing it, so EADDRINUSE is retried briefly. */
  async #bind(): Promise<dgram.Socket> {
    const { ip, port } = this.address;
    const deadline = performance.now() + BIND_RETRY_MS;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const result = this.#bindNow();
      if (result instanceof dgram.Socket) return result;
      const code = (result as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' || performance.now() > deadline || this.#disposed) {
        throw new MigrationError(
          'ERR_ADDRESS',
          `cannot bind the VM's address ${ip}:${port}: ${code ?? toMigrationError(result).message}` +
            (code === 'EADDRNOTAVAIL'
              ? ' (the address is not on this host: give the agent --vm-link IFACE so VMs get their own address)'
              : ''),
          { cause: result },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  #receive(payload: Buffer, from: dgram.RemoteInfo): void {
    if (from.family !== 'IPv4') return;
    const nic = this.#vm.nic!;
    const ip = ipv4ToU32(from.address);
    if (this.#vm.status === 'running' && this.#queue.length === 0 && nic.rxRoom()) {
      nic.receive(ip, from.port, payload);
      return;
    }
    if (this.#queue.length >= MAX_QUEUED) {
      this.#droppedWhilePaused += 1;
      return;
    }
    this.#queue.push({ ip, port: from.port, payload });
  }

  #flushQueue(): void {
    if (this.#vm.status !== 'running') return;
    const nic = this.#vm.nic!;
    // While the ring has room; the rest waits for the guest to consume.
    while (this.#queue.length && nic.rxRoom()) {
      const { ip, port, payload } = this.#queue.shift()!;
      nic.receive(ip, port, payload);
    }
    if (this.#droppedWhilePaused) {
      this.#logger.info(
        { event: 'nic.dropped-while-paused', datagrams: this.#droppedWhilePaused },
        'datagrams dropped while the VM was paused (queue full)',
      );
      this.#droppedWhilePaused = 0;
    }
  }

  /** Send what the guest queued in TX, whenever it kicks, while the VM runs and the socket is ours. */
  #startTx(socket: dgram.Socket): void {
    const stop = new AbortController();
    this.#stopTx = stop;
    const nic = this.#vm.nic!;
    const send = sendFrom(socket);
    const loop = async (): Promise<void> => {
      while (!stop.signal.aborted) {
        if (this.#vm.status !== 'running') {
          await new Promise<void>((resolve) => {
            const off = this.#vm.onStatus(() => {
              off();
              resolve();
            });
            stop.signal.addEventListener('abort', () => {
              off();
              resolve();
            });
          });
          continue;
        }
        await nic.waitForTx(stop.signal);
        if (!stop.signal.aborted && this.#vm.status === 'running') {
          nic.transmit(send);
          // The guest answers every request it consumes: ring room for what waits here.
          this.#flushQueue();
        }
      }
    };
    loop().catch((error: unknown) => {
      if (!stop.signal.aborted) this.#logger.error({ err: error, event: 'nic.tx-failed' }, 'NIC transmit loop failed');
    });
  }
}

/**
 * dgram's address lookup, for the IPv4 literals this backend uses (the VM's address, and the
 * senders its replies go back to): it answers in the same call, so bind() and send() complete
 * synchronously instead of a tick later through dns.lookup.
 */
function literalLookup(
  address: string,
  _options: unknown,
  callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  if (isIPv4(address)) callback(null, address, 4);
  else callback(new MigrationError('ERR_ADDRESS', `not an IPv4 address: ${address}`), address, 4);
}

/**
 * Binds and closes a socket on `ip`, any port, so the process's first real bind is not its
 * first bind. Best effort: a failure here only means the real bind pays the cost.
 */
function warmBind(ip: string): void {
  const socket = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
  socket.on('error', () => {});
  try {
    socket.bind({ address: ip, port: 0, exclusive: true });
  } finally {
    socket.close();
  }
}

/** The device's transmit callback for a socket. */
function sendFrom(socket: dgram.Socket): (ip: number, port: number, payload: Uint8Array) => void {
  return (ip, port, payload) => socket.send(payload, port, u32ToIpv4(ip));
}
