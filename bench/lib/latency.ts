/**
 * Round trips of latency, for the metered build's D1 counts (bench/metered-entry.ts): which of a request's calls the
 * request had to wait for one after another. Calls in flight at the same time count as one — an authenticated read
 * sends the access lookup on the control plane and the shard query at once — so the count is the most calls of
 * which no two were in flight together.
 */

/** One call: its binding and when it was sent and answered, as positions in the order of those events. */
interface Call {
  binding: string;
  sent: number;
  answered: number;
}

/**
 * The most calls in `list` of which no two were in flight together (each sent after the one before was answered):
 * the chain a request waited for one after another. Greedy by earliest answer, which finds the largest such set.
 */
function roundTripsOf(list: readonly Call[]): number {
  let count = 0;
  let free = -1;
  for (const call of [...list].sort((a, b) => a.answered - b.answered)) {
    if (call.sent > free) {
      count++;
      free = call.answered;
    }
  }
  return count;
}

/** The calls of one request (until `reset`), timed by the order of their sends and answers. */
export class CallLog {
  private calls: Call[] = [];
  private inFlight = 0;
  /** Orders sends and answers: workerd's clock stands still while no I/O completes, so it cannot tell them apart. */
  private events = 0;
  /** The most calls in flight at once since the last reset. */
  peakInFlight = 0;

  /** Runs one call of `binding`, recording when it was sent and answered. */
  async call<T>(binding: string, work: () => Promise<T>): Promise<T> {
    const mine: Call = { binding, sent: ++this.events, answered: -1 };
    this.calls.push(mine);
    this.peakInFlight = Math.max(this.peakInFlight, ++this.inFlight);
    try {
      return await work();
    } finally {
      this.inFlight--;
      mine.answered = ++this.events;
    }
  }

  /** Round trips of latency of the answered calls, of one binding or of all. */
  roundTrips(binding?: string): number {
    return roundTripsOf(this.calls.filter((c) => c.answered >= 0 && (binding === undefined || c.binding === binding)));
  }

  /** Answered calls, of one binding or of all. */
  count(binding?: string): number {
    return this.calls.filter((c) => c.answered >= 0 && (binding === undefined || c.binding === binding)).length;
  }

  /** Starts a new request's log; calls still in flight finish uncounted. */
  reset(): void {
    this.calls = [];
    this.peakInFlight = this.inFlight;
  }
}
