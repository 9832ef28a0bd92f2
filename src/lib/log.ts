/** Log levels, as Workers Logs reads them from each JSON line. */
export type LogLevel = 'info' | 'warn' | 'error';

/**
 * One structured log line: `{"level", "msg", …fields}` as JSON, through the console method of its level (`info` is
 * `console.log`), so Workers Logs can filter on every field.
 */
export function logLine(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  console[level === 'info' ? 'log' : level](JSON.stringify({ level, msg, ...fields }));
}
