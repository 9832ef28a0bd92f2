/**
 * A concurrency limiter: at most `max` tasks run at once, the rest wait in order. The consumer runs every outbound
 * fetch through one, because a Worker invocation may hold only 6 simultaneous outbound connections in production
 * (locally nothing enforces it, so the limiter asserts it and tests read `peak`).
 */
export interface Limiter {
  run<T>(task: () => Promise<T>): Promise<T>;
  /** The most tasks that ever ran at once. */
  readonly peak: number;
}

export function createLimiter(max: number): Limiter {
  let active = 0;
  let peak = 0;
  const waiting: Array<() => void> = [];
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  return {
    get peak() {
      return peak;
    },
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (active >= max) await new Promise<void>((resolve) => waiting.push(resolve));
      active++;
      if (active > max) throw new Error(`limiter invariant broken: ${active} > ${max}`);
      peak = Math.max(peak, active);
      try {
        return await task();
      } finally {
        release();
      }
    },
  };
}
