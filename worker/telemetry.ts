import { DefaultLogger, type LogLevel, type LogMetadata, type TelemetryOptions } from '@temporalio/worker';
import type { Config } from '../lib/config';

/**
 * The Temporal SDK's own metrics (task slots, poll and schedule-to-start
 * latencies, sticky cache, …), served by its Prometheus exporter on loopback
 * only: the worker's /metrics merges them in, so each worker is one scrape
 * target behind one token. Passed to Runtime.install, once per process and
 * before any connection or worker exists.
 */
export function temporalMetricsOptions(config: Config): Pick<TelemetryOptions, 'metrics'> {
  const port = config.metrics.temporalPort;
  return port ? { metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } } } : {};
}

export function temporalMetricsUrl(config: Config): string | undefined {
  const port = config.metrics.temporalPort;
  return port ? `http://127.0.0.1:${port}/metrics` : undefined;
}

/**
 * The SDK's own log (WARN and up), less one warning that is by design here:
 * each Docker host's worker polls its sandbox queue for activities only, and
 * "No workflows registered" at every start only alarms operators.
 */
export class TemporalLogger extends DefaultLogger {
  constructor() {
    super('WARN');
  }

  override log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (message.startsWith('No workflows registered')) return;
    super.log(level, message, meta);
  }
}
