/**
 * The bench meter's round trips of latency (bench/lib/latency.ts, used by bench/metered-entry.ts): calls in flight at
 * the same time count as one, so the "Authenticated read = 1 D1 round trip" row counts what a client waits for, not
 * the calls (docs/performance.md#what-changed-for-speed).
 */
import { describe, expect, it } from 'vitest';
import { CallLog } from '../../bench/lib/latency.ts';

/** A call answered after `ms`. */
const answeredIn = (ms: number) => () => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('the bench meter: D1 round trips of latency', () => {
  it('calls in flight at the same time count as one round trip; the calls stay counted', async () => {
    const log = new CallLog();
    // The warm authenticated read: the access lookup on DB and the page on the shard, sent at once.
    await Promise.all([log.call('DB', answeredIn(5)), log.call('SHARD_1', answeredIn(8))]);
    expect({ roundTrips: log.roundTrips(), calls: log.count(), peak: log.peakInFlight }).toEqual({
      roundTrips: 1,
      calls: 2,
      peak: 2,
    });
    expect([log.roundTrips('DB'), log.roundTrips('SHARD_1'), log.roundTrips('SHARD_0')]).toEqual([1, 1, 0]);
  });

  it('a call sent after another was answered is a round trip more; a chain of overlapping calls counts its waits', async () => {
    const log = new CallLog();
    // The first request of a handle: access lookup and directory read at once, then the page on the shard it names.
    await Promise.all([log.call('DB', answeredIn(3)), log.call('DB', answeredIn(3))]);
    await log.call('SHARD_0', answeredIn(1));
    expect({ roundTrips: log.roundTrips(), calls: log.count(), peak: log.peakInFlight }).toEqual({
      roundTrips: 2,
      calls: 3,
      peak: 2,
    });

    log.reset();
    // A [0, 20], B [10, 40] sent while A is in flight, C [30, …] sent after A's answer while B is: A then C waited.
    const a = log.call('DB', answeredIn(20));
    await new Promise((r) => setTimeout(r, 10));
    const b = log.call('DB', answeredIn(30));
    await a;
    const c = log.call('DB', answeredIn(20));
    await Promise.all([b, c]);
    expect({ roundTrips: log.roundTrips(), calls: log.count(), peak: log.peakInFlight }).toEqual({
      roundTrips: 2,
      calls: 3,
      peak: 2,
    });
  });

  it('a reset starts a new request: earlier calls and a failed call are counted where they belong', async () => {
    const log = new CallLog();
    await log.call('DB', answeredIn(1));
    log.reset();
    await expect(log.call('DB', () => Promise.reject(new Error('D1_ERROR')))).rejects.toThrow('D1_ERROR');
    expect({ roundTrips: log.roundTrips(), calls: log.count(), peak: log.peakInFlight }).toEqual({
      roundTrips: 1,
      calls: 1,
      peak: 1,
    });
  });
});
