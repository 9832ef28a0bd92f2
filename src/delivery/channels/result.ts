import type { AttemptObservation } from '../classify.ts';

/** What one channel send observed, before classification: the raw material of an attempt row. */
export interface ChannelResult {
  observation: AttemptObservation;
  httpStatus: number | null;
  responseSnippet: string | null;
  durationMs: number;
  requestBytes: number;
  errorMessage: string | null;
  /** An accepted mail's id at its provider: Email Sending's later verdicts name the mail by it. */
  providerMessageId?: string | null;
}
