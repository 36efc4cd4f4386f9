/**
 * The partner bus, written to as the pipe writes: each event as an EventRef detail, with the
 * pipe's source and the event type as detail-type (pipe.ts), so the rules route it exactly as
 * they route what the pipe puts. PutEvents takes ten entries a request; entries it reports as
 * failed are put again, with backoff, and what still fails is an error naming how many.
 */
import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import { EVENTBRIDGE } from '../../aws-quotas.ts';
import type { EventRef } from '../../core/patterns.ts';
import type { BusPublisher } from '../../ports.ts';
import { backoff } from './dynamo.ts';
import { PIPE_SOURCE } from './pipe.ts';

/** Tries of an entry, counting the first. */
const TRIES = 4;

export class EventBridgeBus implements BusPublisher {
  readonly busName: string;
  readonly #client: EventBridgeClient;

  constructor(client: EventBridgeClient, busName: string) {
    this.#client = client;
    this.busName = busName;
  }

  async publish(refs: readonly EventRef[]): Promise<void> {
    const batches: PutEventsRequestEntry[][] = [];
    for (let i = 0; i < refs.length; i += EVENTBRIDGE.putEventsMaxEntries) {
      batches.push(
        refs.slice(i, i + EVENTBRIDGE.putEventsMaxEntries).map((ref) => ({
          EventBusName: this.busName,
          Source: PIPE_SOURCE,
          DetailType: ref.type,
          Detail: JSON.stringify({
            id: ref.id,
            partnerId: ref.partnerId,
            type: ref.type,
            createdAt: ref.createdAt,
          }),
        })),
      );
    }
    const unsent = await Promise.all(batches.map((batch) => this.#put(batch)));
    const failed = unsent.reduce((sum, n) => sum + n, 0);
    if (failed > 0) throw new Error(`${failed} of ${refs.length} events could not be put on ${this.busName}`);
  }

  /** Puts the batch, its failed entries again; the number still not put. */
  async #put(entries: PutEventsRequestEntry[]): Promise<number> {
    let pending = entries;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const result = await this.#client.send(new PutEventsCommand({ Entries: pending }));
      // Result entries are in the order of the request's; a failed one has an ErrorCode.
      pending = pending.filter((_, i) => result.Entries?.[i]?.ErrorCode !== undefined);
      if (pending.length === 0 || attempt >= TRIES) return pending.length;
      await backoff(attempt, 50, 1000);
    }
    return 0;
  }
}
