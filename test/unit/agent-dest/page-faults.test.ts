/**
 * The destination's fault handler: one request per faulted page not yet asked for, a bounded
 * window of pages in flight (the rest wait their turn), re-requests after a reconnect within the
 * same window, and latency counted for every fault.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@livemig/shared';
import type { PeerChannel } from '@livemig/shared/channel';
import { MsgType, type Message } from '@livemig/shared/protocol';
import type { PageFault, ToyVm } from '@livemig/shared/vm';
import { FaultHandler, MAX_INFLIGHT_PAGES } from '../../../agent-dest/src/migration/page-faults.ts';

function fakeVm(): { vm: ToyVm; fault: (page: number) => void; present: Set<number> } {
  let listener: ((fault: PageFault) => void) | undefined;
  const present = new Set<number>();
  const vm = {
    onFault: (l: (fault: PageFault) => void) => {
      listener = l;
      return () => (listener = undefined);
    },
    isPresent: (page: number) => present.has(page),
  } as unknown as ToyVm;
  return { vm, present, fault: (page) => listener?.({ page, time: performance.timeOrigin + performance.now() }) };
}

function recordingChannel(): { channel: PeerChannel; requested: () => number[] } {
  const sent: Message[] = [];
  const channel = { failure: undefined, send: (m: Message) => sent.push(m) } as unknown as PeerChannel;
  const requested = (): number[] => sent.flatMap((m) => (m.type === MsgType.PageRequest ? [...m.pages] : []));
  return { channel, requested };
}

describe('FaultHandler', () => {
  it('asks once per page; a second fault on a page in flight just waits', () => {
    const { vm, fault } = fakeVm();
    const handler = new FaultHandler(vm, silentLogger());
    const { channel, requested } = recordingChannel();
    handler.attachChannel(channel);
    handler.start();
    fault(7);
    fault(7);
    expect(requested()).toEqual([7]);
    expect(handler.stats().faults).toBe(2);
  });

  it(`keeps at most ${MAX_INFLIGHT_PAGES} pages in flight; the rest go out as pages arrive`, () => {
    const { vm, fault } = fakeVm();
    const handler = new FaultHandler(vm, silentLogger());
    const { channel, requested } = recordingChannel();
    handler.attachChannel(channel);
    handler.start();
    for (let page = 0; page < 100; page++) fault(page);
    expect(requested()).toHaveLength(MAX_INFLIGHT_PAGES);
    expect(handler.inflight).toBe(MAX_INFLIGHT_PAGES);
    for (let page = 0; page < 10; page++) handler.pageArrived(page);
    expect(requested()).toHaveLength(MAX_INFLIGHT_PAGES + 10);
    expect(new Set(requested()).size).toBe(MAX_INFLIGHT_PAGES + 10);
    expect(handler.stats().latencyMs).not.toBeNull();
  });

  it('after a reconnect re-asks for the pages in flight, within the same window', () => {
    const { vm, fault } = fakeVm();
    const handler = new FaultHandler(vm, silentLogger());
    const first = recordingChannel();
    handler.attachChannel(first.channel);
    handler.start();
    for (let page = 0; page < 100; page++) fault(page);
    handler.detachChannel();
    const second = recordingChannel();
    handler.attachChannel(second.channel);
    expect(second.requested()).toEqual([...Array(MAX_INFLIGHT_PAGES).keys()]);
  });
});
