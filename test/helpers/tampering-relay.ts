/**
 * A TCP relay for tests that decodes every frame passing through and re-encodes it after
 * `tamper` had its way with it — an attacker in the middle of a plaintext link. Used to prove
 * that verification covers what it claims: a register changed in transit must fail the
 * migration, the VM staying on the source. A stream it cannot decode, or a `tamper` that throws,
 * cuts that connection. The sockets and decoding are frame-relay.ts's.
 */
import { encodeFrame, type Message } from '@livemig/shared/protocol';
import { startFrameRelay, type RelayDirection } from './frame-relay.ts';

export type TamperDirection = RelayDirection;

export interface TamperingRelay {
  address: string;
  /** How many messages `tamper` changed. */
  readonly tampered: number;
  close(): Promise<void>;
}

/** `tamper` returns the message to forward (the same object: forwarded as it was). */
export async function startTamperingRelay(
  target: { host: string; port: number },
  tamper: (message: Message, direction: TamperDirection) => Message,
): Promise<TamperingRelay> {
  let tampered = 0;
  const relay = await startFrameRelay(target, (connection) => ({ direction, frames, error }) => {
    if (error) return connection.cut();
    try {
      for (const message of frames) {
        const out = tamper(message, direction);
        if (out !== message) tampered += 1;
        for (const part of encodeFrame(out)) connection.forward(direction, part);
      }
    } catch {
      connection.cut();
    }
  });
  return {
    address: relay.address,
    get tampered() {
      return tampered;
    },
    close: relay.close,
  };
}
