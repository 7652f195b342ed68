/**
 * The incoming migration's main connection, which post-copy recovery may replace: the current
 * channel, one `next()` kept pending across wake-ups (so no message is ever taken and dropped),
 * a wake-up for the post-copy loop (a page arrived, the source's digest came), and the hand-over
 * to a connection that resumed the migration after the old one broke.
 */
import { MigrationError } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import type { Message } from '@livemig/shared/protocol';

export class MainLink {
  #channel: PeerChannel;
  #pendingNext: Promise<Message> | undefined;
  #wake: (() => void) | undefined;
  #replacement: PeerChannel | undefined;

  constructor(channel: PeerChannel) {
    this.#channel = channel;
  }

  get channel(): PeerChannel {
    return this.#channel;
  }

  /** The next message, or undefined when woken first. */
  async nextOrWake(): Promise<Message | undefined> {
    this.#pendingNext ??= this.#channel.next();
    const woken = new Promise<undefined>((resolve) => (this.#wake = () => resolve(undefined)));
    try {
      const result = await Promise.race([this.#pendingNext, woken]);
      if (result !== undefined) this.#pendingNext = undefined;
      return result;
    } catch (error) {
      this.#pendingNext = undefined;
      throw error;
    } finally {
      this.#wake = undefined;
    }
  }

  /** Wake whoever waits in nextOrWake() or awaitReplacement(). */
  wake(): void {
    this.#wake?.();
  }

  /** A connection resumed this migration: use it from the next wait on; drop the old one if still up. */
  replace(channel: PeerChannel): void {
    this.#replacement = channel;
    if (this.#channel.failure === undefined) {
      this.#channel.abort(new MigrationError('ERR_CONNECTION', 'replaced by the resumed connection'));
    }
    this.wake();
  }

  /**
   * Why `channel` may not join this migration (Attach fault or resume), or undefined: on
   * authenticated channels it must come from the same source identity as the main one — a
   * migration id is not a capability.
   */
  refusesJoin(channel: PeerChannel, migrationId: string): MigrationError | undefined {
    const source = this.#channel.peer?.name;
    if (source === undefined || channel.peer?.name === source) return undefined;
    const who = channel.peer?.name ?? 'an unauthenticated peer';
    return new MigrationError('ERR_FORBIDDEN', `migration ${migrationId} belongs to "${source}", not "${who}"`);
  }

  /** Wait until a replacement connection arrived, then switch to it. */
  async awaitReplacement(): Promise<void> {
    while (!this.#replacement) await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#channel = this.#replacement;
    this.#replacement = undefined;
    this.#pendingNext = undefined;
  }
}
