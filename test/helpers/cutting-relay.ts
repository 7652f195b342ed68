/**
 * A TCP relay for tests that decodes the livemig frames passing through and cuts the link at
 * an exact protocol moment — e.g. "drop the Ready frame and cut", "let Handoff through, then
 * cut before Resumed gets back" — so the ownership rules around handoff can be tested
 * deterministically instead of by timing. A cut destroys both sides of that connection; the
 * relay cuts once, then forwards every later connection untouched (so a reconnect gets through).
 * The sockets and decoding are frame-relay.ts's; a stream it cannot decode is thrown (a test bug).
 */
import { messageName, type Message } from '@livemig/shared/protocol';
import { startFrameRelay, type RelayDirection } from './frame-relay.ts';

export type Direction = RelayDirection;
/** forward: pass the bytes on; cut-before: drop the chunk holding this frame and cut; cut-after: pass it, then cut. */
export type Verdict = 'forward' | 'cut-before' | 'cut-after';

export interface Relay {
  /** "127.0.0.1:PORT" to give the source as --to. */
  address: string;
  /** Names of the messages seen, per direction, in order. */
  seen: Record<Direction, string[]>;
  /** Resolves when a cut happened. */
  cut: Promise<string>;
  close(): Promise<void>;
}

export async function startCuttingRelay(
  target: { host: string; port: number },
  rule: (direction: Direction, message: Message, connection: number) => Verdict,
): Promise<Relay> {
  let hasCut = false;
  const seen: Record<Direction, string[]> = { 'to-dest': [], 'to-source': [] };
  let onCut!: (what: string) => void;
  const cut = new Promise<string>((resolve) => (onCut = resolve));
  const relay = await startFrameRelay(target, (connection) => {
    const kill = (what: string): void => {
      hasCut = true;
      connection.cut();
      onCut(what);
    };
    return ({ direction, chunk, frames, error }) => {
      if (error) throw error;
      let verdict: Verdict = 'forward';
      let trigger = '';
      for (const message of frames) {
        seen[direction].push(messageName(message.type));
        const v = hasCut ? 'forward' : rule(direction, message, connection.id);
        if (v !== 'forward' && verdict === 'forward') {
          verdict = v;
          trigger = `${v} ${messageName(message.type)} ${direction}`;
        }
      }
      if (verdict === 'cut-before') return kill(trigger);
      connection.forward(direction, chunk);
      if (verdict === 'cut-after') connection.end(direction, () => kill(trigger));
    };
  });
  return { address: relay.address, seen, cut, close: relay.close };
}
