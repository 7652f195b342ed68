/**
 * Parallel bulk channels (multifd, issue 18): N connections, each owned by a worker on both ends
 * that reads pages from / writes pages into guest memory directly and hashes them for the digest.
 * partition.ts deals a round's pages to the channels, round-barrier.ts says when a round arrived
 * whole on all of them; multifd-sender.ts / multifd-receiver.ts run the workers.
 */
export { MAX_CHANNELS, DEFAULT_BATCH_PAGES, MAX_BATCH_PAGES, checkChannels, partitionRound } from './partition.ts';
export type { PartitionMode, PartitionOptions } from './partition.ts';
export { RoundBarrier } from './round-barrier.ts';
export type { ChannelCount, ChannelMarker, RoundVerdict } from './round-barrier.ts';
export { SharedPageHashes } from './shared-page-hashes.ts';
export { MultifdSender } from './multifd-sender.ts';
export type { ChannelTotals, MultifdSenderOptions } from './multifd-sender.ts';
export { MultifdReceiver } from './multifd-receiver.ts';
export type { MultifdReceiverOptions } from './multifd-receiver.ts';
