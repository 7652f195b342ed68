/**
 * Where the virtual NIC lives in guest memory — the contract between the guest's driver (the
 * `kv` workload, in the vCPU worker) and the device model (nic-device.ts, on the agent's event
 * loop). Modelled on a virtio-net split ring, cut down to what a UDP service needs: one RX and
 * one TX ring of fixed-size slots, and four free-running u32 indices. Like virtio's, the rings
 * and the indices are guest RAM, so whatever the device writes there (received datagrams, the
 * TX "used" index) dirties guest pages like DMA and migrates with memory; only the MAC, the
 * address and the counters are device state.
 *
 *   page 0              index words (Int32 word offsets below, each on its own 64-byte line)
 *   pages 1 ..  4       RX ring: RING_SLOTS slots of SLOT_BYTES, written by the device
 *   pages 5 ..  8       TX ring: RING_SLOTS slots of SLOT_BYTES, written by the guest
 *   pages 9 ..          free for the guest (the kv table starts here)
 *
 * Indices count slots ever filled / consumed (wrapping at 2^32); slot i lives at i % RING_SLOTS.
 * RX: the device fills slot RX_USED and then publishes RX_USED + 1 (Atomics.store); the guest
 * reads slots below RX_USED and then publishes RX_CONSUMED. The device never fills a slot the
 * guest has not consumed (RX_USED − RX_CONSUMED < RING_SLOTS); if the ring is full the datagram
 * is dropped and counted. TX is the mirror image: the guest fills TX_PRODUCED, the device sends
 * and publishes TX_USED. Publishing with Atomics after plain slot writes is the release/acquire
 * pair that makes the slot bytes visible before the index.
 *
 * Wake-ups: the device kicks the vCPU after filling an RX slot, and also after sending TX slots
 * while RX still holds unread datagrams (a guest halted on a full TX ring has nothing else to
 * wake it); the guest notifies TX_PRODUCED after each batch that produced replies. Page 0 holds
 * words both sides write, so it is dirty in nearly every round and, with the rings, must be
 * present on a post-copy destination before either side runs (ToyVm.devicePages()). Indices are
 * u32 kept in Int32 words: readers do their arithmetic with `>>> 0`. The guest reads slots as
 * native words, so the format assumes a little-endian host (the kv workload checks).
 *
 * Slot: | ipv4 u32 (a.b.c.d = a<<24|b<<16|c<<8|d) | port u16 | length u16 | payload (≤ 56 bytes) |
 * On RX the address is the sender's; on TX it is where the reply goes. Little-endian.
 */

/** Pages the NIC occupies at the start of guest memory. */
export const NIC_PAGES = 9;
/** First page of the RX ring. */
export const RX_RING_PAGE = 1;
/** First page of the TX ring. */
export const TX_RING_PAGE = 5;
/** Slots per ring. */
export const RING_SLOTS = 256;
/** Bytes per slot. */
export const SLOT_BYTES = 64;
/** Slot header: address, port, length. */
export const SLOT_HEADER_BYTES = 8;
/** Largest datagram a slot holds. */
export const SLOT_PAYLOAD_BYTES = SLOT_BYTES - SLOT_HEADER_BYTES;

/** Int32 word index in page 0: RX slots the device has filled (device writes). */
export const W_RX_USED = 0;
/** Int32 word index in page 0: RX slots the guest has consumed (guest writes). */
export const W_RX_CONSUMED = 16;
/** Int32 word index in page 0: TX slots the guest has filled (guest writes; the device waits on it). */
export const W_TX_PRODUCED = 32;
/** Int32 word index in page 0: TX slots the device has sent (device writes). */
export const W_TX_USED = 48;

/** Byte offset of RX slot i (any index; it wraps) from the start of guest memory. */
export function rxSlotOffset(i: number): number {
  return RX_RING_PAGE * 4096 + ((i >>> 0) % RING_SLOTS) * SLOT_BYTES;
}

/** Byte offset of TX slot i (any index; it wraps) from the start of guest memory. */
export function txSlotOffset(i: number): number {
  return TX_RING_PAGE * 4096 + ((i >>> 0) % RING_SLOTS) * SLOT_BYTES;
}
